"""A member's state as the policies need it: who they are on a given date, what they have used, what they hold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from .calendar import first_of_next_month
from .counters import period_key
from .money import ZERO
from .outputs import Delta

EMPLOYEE = "employee"
RESIDENT = "resident"
RETIRED_TYPES = frozenset({"retired"})


@dataclass(frozen=True, slots=True)
class Status:
    """Insurance and person type in force from `since` on."""

    since: date
    insurance_type: str
    person_type: str


@dataclass(frozen=True, slots=True)
class Certification:
    """One step in a disease's certification history; `annual_cap` None means revoked from `since` on."""

    since: date
    disease_code: str
    annual_cap: Decimal | None
    kind: str | None


@dataclass(slots=True)
class MemberState:
    region: str
    member_id: str
    birth_date: date
    enrolled_on: date
    statuses: list[Status]
    contribution_base: Decimal | None = None
    monthly_pension: Decimal | None = None
    legacy_monthly_credit: Decimal | None = None
    designated_facilities: frozenset[str] = frozenset()
    remote_pilot: bool = False
    retired_on: date | None = None  # the day the retirement procedure completed
    retirement_pension: Decimal | None = None  # pension of the retirement month (002 第五条)
    segment_starts: list[date] = field(default_factory=list)  # Weihai insurance-type changes (001 第十一条)
    terminated_on: date | None = None
    termination_reason: str | None = None
    earlier_periods: list[tuple[date, date]] = field(default_factory=list)  # (from, terminated on) before re-enrolment
    certifications: dict[str, list[Certification]] = field(default_factory=dict)
    family_grants: dict[str, str] = field(default_factory=dict)  # beneficiary -> relation
    balance: Decimal = ZERO
    account_closed: bool = False
    bonus_points: Decimal = Decimal("0.0")  # Weihai ratio bonus (001 第十二条)
    health_streak: int = 0  # Nanjing health-incentive streak (002 第七条)
    year_balances: dict[str, Decimal] = field(default_factory=dict)  # balance after the last movement of a year
    incentives: dict[str, str] = field(default_factory=dict)  # a year's close -> the incentive state it set
    counters: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    # Month posted ("YYYY-MM") -> what its contribution credited: one contribution per month, a correction settles
    # the difference (policies.limits, policies.accounts).
    contributions: dict[str, Decimal] = field(default_factory=dict)

    # -- who the member is on a date -------------------------------------------------------------

    def status_on(self, day: date) -> Status:
        for status in reversed(self.statuses):
            if status.since <= day:
                return status
        return self.statuses[0]

    def is_retired_on(self, day: date) -> bool:
        return self.status_on(day).person_type in RETIRED_TYPES

    def segment_on(self, day: date) -> int:
        """Index of the Weihai general-outpatient segment of `day`'s year (0 until a type change that year)."""
        if not self.segment_starts:
            return 0
        return sum(1 for start in self.segment_starts if start.year == day.year and start <= day)

    def certification_on(self, disease_code: str, day: date) -> Certification | None:
        current = None
        for step in self.certifications.get(disease_code, ()):
            if step.since <= day:
                current = step
        return current if current is not None and current.annual_cap is not None else None

    def certified_caps_on(self, day: date, kind: str | None = None) -> list[Decimal]:
        caps = []
        for code in self.certifications:
            cert = self.certification_on(code, day)
            # certification_on gives only certifications in force, each with its cap
            if cert is not None and cert.annual_cap is not None and (kind is None or cert.kind == kind):
                caps.append(cert.annual_cap)
        return caps

    # -- what the member has used ----------------------------------------------------------------

    def counter(self, name: str, year: int, segment: int = 0) -> Decimal:
        period = self.counters.get(str(year) if not segment else period_key(year, segment))
        return period.get(name, ZERO) if period is not None else ZERO

    def year_total(self, name: str, year: int) -> Decimal:
        """A counter summed over every segment of the year."""
        values = self.counters.get(str(year))
        total = values.get(name, ZERO) if values else ZERO
        if self.segment_starts:
            prefix = f"{year}#"
            for key, values in self.counters.items():
                if key.startswith(prefix):
                    total += values.get(name, ZERO)
        return total

    def move(self, deltas: Iterable[Delta]) -> None:
        counters = self.counters
        for key, name, amount in deltas:
            period = counters.get(key)
            if period is None:
                period = counters[key] = {}
            period[name] = period.get(name, ZERO) + amount

    # -- enrolment over a year -------------------------------------------------------------------

    def periods(self) -> list[tuple[date, date | None]]:
        """Every enrolment of the member in the region: (from, terminated on), the open one last."""
        return [*self.earlier_periods, (self.enrolled_on, self.terminated_on)]

    def covered_on(self, day: date) -> bool:
        if not self.earlier_periods:  # one enrolment, as nearly every member has: no list of periods to build
            return self.enrolled_on <= day and (self.terminated_on is None or day < self.terminated_on)
        return any(start <= day and (end is None or day < end) for start, end in self.periods())

    def enrolled_whole_year(self, year: int) -> bool:
        """policy notes §0: enrolled on or before 1 January and not terminated before 31 December."""
        return any(
            start <= date(year, 1, 1) and (end is None or end >= date(year, 12, 31)) for start, end in self.periods()
        )

    def enrolled_during(self, year: int) -> bool:
        return any(
            start <= date(year, 12, 31) and (end is None or end >= date(year, 1, 1)) for start, end in self.periods()
        )


def retirement_status(member: MemberState, completed_on: date) -> Status:
    """Retirement counts from the month after the procedure completes (000 第十一条, 002 第十八条, 001 第二十四条)."""
    return Status(first_of_next_month(completed_on), member.status_on(completed_on).insurance_type, "retired")
