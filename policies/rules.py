"""The shape every region's rules share, and the policy version record that binds rules to parameters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import ModuleType
from typing import Any


@dataclass(frozen=True, slots=True)
class Credit:
    """A personal-account credit a region grants for a contribution, a pension month or an incentive."""

    purpose: str
    amount: Decimal
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class YearClose:
    """A member's incentive evaluation at the close of a year; `credit` is an account credit it earns."""

    incentive: str
    before: Decimal | int
    after: Decimal | int
    lines: tuple[str, ...]
    credit: Credit | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """One version of one region's policy: rules (a region module) with the parameters in force."""

    policy_id: str
    region: str
    valid_from: date
    valid_to: date | None
    rules: ModuleType
    params: Any

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)
