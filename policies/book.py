"""The engine's working state: every member, every settled visit, every closed year. Held in memory by the
offline tool; loaded from and saved to the ledger's projections by the durable service."""

from __future__ import annotations

from dataclasses import dataclass, field

from .member import MemberState
from .outputs import Settlement
from .registry import PolicyRegistry


@dataclass
class Book:
    policies: PolicyRegistry = field(default_factory=PolicyRegistry)
    members: dict[tuple[str, str], MemberState] = field(default_factory=dict)
    visits: dict[tuple[str, str], Settlement] = field(default_factory=dict)  # (region, visit_id) -> settlement
    reversed_visits: set[tuple[str, str]] = field(default_factory=set)
    payments: set[tuple[str, str]] = field(default_factory=set)  # (region, payment_id)
    closed_years: set[tuple[str, int]] = field(default_factory=set)

    def member(self, region: str, member_id: str) -> MemberState | None:
        return self.members.get((region, member_id))

    def region_members(self, region: str) -> list[MemberState]:
        return [self.members[key] for key in sorted(k for k in self.members if k[0] == region)]
