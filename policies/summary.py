"""A member's year in figures: what the projections show and the member statement prints."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from . import counters as c
from .member import MemberState
from .money import ZERO
from .rules import Policy


def status_word(member: MemberState, day: date) -> str:
    if member.covered_on(day):
        return "enrolled"
    if member.terminated_on is not None and member.terminated_on <= day:
        return f"terminated ({member.termination_reason})"
    return "not enrolled"


def counters_by_year(member: MemberState) -> dict[int, dict[str, dict[str, Decimal]]]:
    """The member's counters grouped by the year of their period ("2024" and "2024#1" both count for 2024)."""
    grouped: dict[int, dict[str, dict[str, Decimal]]] = {}
    for period, values in member.counters.items():
        grouped.setdefault(int(period.split("#")[0]), {})[period] = values
    return grouped


def year_summary(
    member: MemberState, year: int, policy: Policy | None, periods: dict[str, dict[str, Decimal]] | None = None
) -> dict:
    """`periods` is the year's share of `counters_by_year`, when the caller has it already."""
    if periods is None:
        periods = counters_by_year(member).get(year, {})
    totals: dict[str, Decimal] = {}
    for values in periods.values():
        for name, value in values.items():
            totals[name] = totals.get(name, ZERO) + value
    total = totals.get
    end = date(year, 12, 31)
    status = member.status_on(end)
    pool = policy.rules.pool_limit(member, end, policy.params) if policy is not None else None
    return {
        "status": status_word(member, end),
        "insurance_type": status.insurance_type,
        "person_type": status.person_type,
        "deductible_paid": total(c.DEDUCTIBLE, ZERO),
        "chronic_deductible_paid": total(c.CHRONIC_DEDUCTIBLE, ZERO) + total(c.COMMON_CHRONIC_DEDUCTIBLE, ZERO),
        "general_fund_paid": total(c.GENERAL_FUND, ZERO),
        "chronic_fund_paid": total(c.CHRONIC_FUND, ZERO) + total(c.COMMON_CHRONIC_FUND, ZERO),
        "capped_base_used": total(c.GENERAL_BASE, ZERO),
        "chronic_base_used": total(c.CHRONIC_BASE, ZERO) + total(c.COMMON_CHRONIC_BASE, ZERO),
        "band_position": total(c.BAND_POSITION, ZERO),
        "chronic_pool": pool,
        "external_fund_paid": total(c.EXTERNAL_FUND, ZERO),
        **incentive_of_year(member, year),
        "balance": balance_at_end_of(member, year),
    }


def balance_at_end_of(member: MemberState, year: int) -> Decimal:
    """The balance after the last movement booked in `year` or before it."""
    years = [int(y) for y in member.year_balances if int(y) <= year]
    return member.year_balances[str(max(years))] if years else ZERO


def incentive_of_year(member: MemberState, year: int) -> dict:
    """The incentive state that `year`'s close set, or the one in force when the year is not closed yet."""
    closed = member.incentives.get(str(year))
    if closed is None:
        return {"bonus_points": member.bonus_points, "health_streak": member.health_streak}
    if member.region == "371000":
        return {"bonus_points": Decimal(closed), "health_streak": member.health_streak}
    return {"bonus_points": member.bonus_points, "health_streak": int(closed)}


def years_of(member: MemberState) -> set[int]:
    """Every year the member has figures for, and the year the enrolment took effect."""
    years = {int(period.split("#")[0]) for period in member.counters}
    years.update(start.year for start, _ in member.periods())
    years.update(int(y) for y in member.year_balances)
    years.update(int(y) for y in member.incentives)
    return years
