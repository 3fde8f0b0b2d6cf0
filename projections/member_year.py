"""Per member and year: deductible, fund paid per pool, capped base, band position, chronic pool and its use,
incentive state, balance and enrolment status."""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter

import msgspec

from policies.member import MemberState
from policies.registry import PolicyRegistry
from policies.summary import counters_by_year, year_summary

# The member_year row, column by column: its name and the kind of value it holds ("... or none": it may be empty).
# The one definition of it: `rows` gives the values in this order, and ledger.db.tables makes the table of it.
SHAPE: tuple[tuple[str, str], ...] = (
    ("region", "text"),
    ("member_id", "text"),
    ("year", "integer"),
    ("status", "text"),
    ("insurance_type", "text"),
    ("person_type", "text"),
    ("deductible_paid", "money"),
    ("chronic_deductible_paid", "money"),
    ("general_fund_paid", "money"),
    ("chronic_fund_paid", "money"),
    ("capped_base_used", "money"),
    ("chronic_base_used", "money"),
    ("band_position", "money"),
    ("chronic_pool", "money or none"),  # none: the region has no chronic pool that year
    ("external_fund_paid", "money"),
    ("bonus_points", "points"),  # Weihai's ratio bonus, to one decimal (001 第十二条)
    ("health_streak", "integer"),
    ("balance", "money"),
    ("counters", "json"),
)
COLUMNS = tuple(name for name, _ in SHAPE)

# The parts of a member's state no row reads (`year_summary` reads enrolment periods, statuses, certifications,
# incentives, counters and year balances): an event that changes only these and counters or balances
# (`ledger.batch.YEARS_FROM_OUTPUTS`) leaves the other years' rows as they are.
UNREAD = frozenset(
    (
        "balance",
        "contribution_base",
        "monthly_pension",
        "legacy_monthly_credit",
        "retirement_pension",
        "family_grants",
        "designated_facilities",
        "remote_pilot",
        "account_closed",
        "contributions",
    )
)

# A year's counters as the row keeps them: periods and names sorted, Decimals as their strings.
_COUNTERS = msgspec.json.Encoder(order="deterministic")
_SUMMARY_COLUMNS = itemgetter(*COLUMNS[3:18])


def rows(member: MemberState, years: Iterable[int], registry: PolicyRegistry) -> list[tuple]:
    """The member's rows of `years`, each keeping its periods' share of the counters."""
    result = []
    grouped = counters_by_year(member)
    region, member_id = member.region, member.member_id
    for year in sorted(years):
        periods = grouped.get(year, {})
        summary = year_summary(member, year, registry.for_year(region, year), periods)
        counters = _COUNTERS.encode(periods).decode()
        result.append((region, member_id, year, *_SUMMARY_COLUMNS(summary), counters))
    return result
