"""What every region does with a visit before and after its own rules: the bill, the facility, the exclusions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from .member import Certification, MemberState, Status
from .money import ZERO, fen
from .outputs import Delta

NEVER_PAYABLE = frozenset({"health_checkup", "public_health"})  # policy notes §0, 000 第十二条
FEE_LINES = frozenset({"consultation_fee", "general_diagnosis_fee", "nucleic_acid_test"})  # 002 第十五条
COMMUNITY_KINDS = frozenset({"community_health_center", "township_health_center"})


class Bill(NamedTuple):
    """A visit's items summed up; a tuple, made once a visit (a frozen dataclass costs several times more to make)."""

    total: Decimal
    out_of_catalog: Decimal
    pre_self_pay: Decimal
    eligible: Decimal  # in-policy and fund-payable
    fee_eligible: Decimal  # the part of `eligible` on 002 第十五条 fee lines
    excluded: Decimal  # in-policy but never fund-payable (health check-up, public health)


def bill_of(items: Iterable[Any]) -> Bill:
    total = out_of_catalog = pre_self_pay = eligible = fee = excluded = ZERO
    for item in items:
        amount, ooc, psp, category = item.amount, item.out_of_catalog_amount, item.pre_self_pay_amount, item.category
        in_policy = amount - ooc - psp
        total += amount
        out_of_catalog += ooc
        pre_self_pay += psp
        if category in NEVER_PAYABLE:
            excluded += in_policy
        else:
            eligible += in_policy
            if category in FEE_LINES:
                fee += in_policy
    return Bill(total, out_of_catalog, pre_self_pay, eligible, fee, excluded)


@dataclass(frozen=True, slots=True)
class Facility:
    """The facility whose level, grade and kind set the rates: the prescriber's, for a pharmacy purchase."""

    level: int
    grade: str | None
    kind: str
    pharmacy: bool

    @property
    def community(self) -> bool:
        return self.kind in COMMUNITY_KINDS

    def describe(self) -> str:
        grade = self.grade or ""
        return f"{self.kind.replace('_', ' ')} tier {self.level}{grade}"


def rated_facility(visit: Any) -> Facility | None:
    """None when the purchase is not fund-payable: a pharmacy without an external prescription (002 第二十三条)."""
    pharmacy = visit.facility_kind == "retail_pharmacy"
    source = visit.prescription if pharmacy else visit
    if source is None:
        return None
    level, kind = source.facility_level, source.facility_kind
    if level == 0 and kind in COMMUNITY_KINDS:
        level = 1  # 000 第十条: 一级含社区卫生服务中心、乡镇卫生院
    if kind == "village_clinic":
        level = 0  # a village clinic is below tier 1 whatever level is reported (000 第十条, 003 一(一))
    key = (level, source.facility_grade, kind, pharmacy)
    facility = _FACILITIES.get(key)
    if facility is None:  # a few dozen ratings at most: each made once and shared (it is frozen)
        facility = _FACILITIES[key] = Facility(*key)
    return facility


_FACILITIES: dict[tuple[int, str | None, str, bool], Facility] = {}


@dataclass(slots=True)
class VisitContext:
    """Everything a region's rules read to settle one visit."""

    member: MemberState
    visit: Any
    day: date
    bill: Bill
    facility: Facility
    status: Status
    retired: bool
    certification: Certification | None
    params: Any
    closed_years: frozenset | set  # (region, year) pairs whose close has run
    # Read by the rules several times a visit: set once, where they were properties computed at each read.
    year: int  # the day's
    employee: bool  # status.insurance_type == "employee"
    out_of_area: str  # the visit's


@dataclass(slots=True)
class FundDecision:
    """A region's answer for the in-policy part of a visit."""

    pool: str = "general"
    deductible: Decimal = ZERO
    fund: Decimal = ZERO
    over_limit: Decimal = ZERO
    ratio: Decimal = ZERO
    limit_remaining: Decimal | None = None
    deltas: list[Delta] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def no_fund(self, line: str) -> FundDecision:
        self.lines.append(line)
        return self


def deductible_due(amount: Decimal, threshold: Decimal, paid: Decimal) -> Decimal:
    """What of `amount` goes to the deductible: min(amount, max(0, threshold − paid so far)).

    Written as comparisons, which pick the very operand min() and max() pick (the first of equals: amounts equal
    in value may differ in their digits, 100 and 100.00) at a fifth of the builtins' cost on Decimals."""
    due = threshold - paid
    if not due > ZERO:
        due = ZERO
    return due if due < amount else amount


def pay_under_fund_cap(
    decision: FundDecision,
    eligible: Decimal,
    threshold: Decimal,
    paid: Decimal,
    ratio: Decimal,
    cap: Decimal,
    used: Decimal,
) -> Decimal:
    """Deductible on a yearly counter, the ratio on the rest, then a cap on the fund payment itself (Ningxia's
    000 第十一条 and 第十九条, and configured tables). Fills `decision`; returns the fund before the cap."""
    deductible = deductible_due(eligible, threshold, paid)
    room = cap - used
    if not room > ZERO:
        room = ZERO  # max(ZERO, cap - used), as in deductible_due
    uncapped = fen((eligible - deductible) * ratio)
    fund = room if room < uncapped else uncapped  # min(uncapped, room)
    decision.deductible, decision.fund, decision.over_limit, decision.ratio = deductible, fund, uncapped - fund, ratio
    decision.limit_remaining = room - fund
    return uncapped
