"""The shape every region's rules share, and the policy version record that binds rules to parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .member import MemberState, Status
    from .outputs import Delta
    from .visit import FundDecision, VisitContext


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


# One version of a region's policy: (policy_id, valid_from, valid_to or None while in force, its default Params).
Version = tuple[str, date, date | None, Any]


class RegionRules(Protocol):
    """What a region module (ningxia, weihai, nanjing, inner_mongolia) provides, and the engine calls by name.
    `params` is the region's own Params in force; `event` a contract event (policies know no contract types).
    The hooks only some regions have are None in the others; mypy checks each module against this shape where
    policies.registry lists it."""

    REGION: str
    DOCUMENT: str  # the policy documents, cited in every settlement
    ACCOUNT_ARTICLE: str  # the article on paying from the personal account
    FAMILY_ARTICLE: str  # the article on family members sharing an account
    CONTRIBUTION_ARTICLE: str  # the article on the individual's contribution into the account
    INDIVIDUAL_RATE: str  # the Params field of the individual's contribution rate
    INSURANCE_TYPES: frozenset[str]  # the schemes whose members get an outpatient benefit
    PURPOSES: frozenset[str]  # what an account may pay for
    FAMILY_RELATIONS: frozenset[str]  # who may share a member's account
    VERSIONS: tuple[Version, ...]

    def settle(self, ctx: VisitContext, /) -> FundDecision: ...

    def contribution_credits(self, member: MemberState, event: Any, month: date, params: Any, /) -> list[Credit]: ...

    def pension_credits(self, member: MemberState, event: Any, month: date, params: Any, /) -> list[Credit]: ...

    def pool_limit(self, member: MemberState, day: date, params: Any, /) -> Decimal | None: ...

    def limits_remaining(self, member: MemberState, day: date, params: Any, /) -> dict[str, Decimal]: ...

    @property
    def screen_visit(self) -> Callable[[Any, Any], None] | None:
        """Refuse a visit the region's rules exclude, before it settles."""

    @property
    def restarts_counters(self) -> Callable[[Status, Status], bool] | None:
        """Whether a change of insurance status restarts the year's deductible and limits."""

    @property
    def on_interruption(self) -> Callable[[MemberState, date], list[Delta]] | None:
        """The counter changes an interruption of contributions makes."""

    @property
    def close_year(self) -> Callable[[MemberState, int, Any], YearClose] | None:
        """A member's incentive evaluation at a year's close; None: the region has no incentive."""

    @property
    def apply_year_close(self) -> Callable[[MemberState, YearClose], None] | None:
        """Apply close_year's evaluation to the member."""


@dataclass(frozen=True, slots=True)
class Policy:
    """One version of one region's policy: rules (a region module) with the parameters in force."""

    policy_id: str
    region: str
    valid_from: date
    valid_to: date | None
    rules: RegionRules
    params: Any

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)
