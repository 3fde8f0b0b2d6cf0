"""Per member and year: deductible, fund paid per pool, capped base, band position, chronic pool and its use,
incentive state, balance and enrolment status."""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter

import orjson

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

# The parts of a member's state (in the codec's JSON form) that a year's row reads only for its own year, or, for
# balances, for its own year and the years after it.
PER_YEAR = frozenset(("counters", "year_balances"))
# The parts no row reads (`year_summary` reads enrolment periods, statuses, certifications, incentives, counters
# and year balances). Anything not named here or above may matter to every year.
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


SKIPPED = PER_YEAR | UNREAD


def changed_years(before: dict, after: dict, years: set[int]) -> set[int] | None:
    """Of the member's `years`, those whose rows can differ between the two states; None when every year's can
    (or a year may have gone), so that all of them are written again."""
    if before.keys() != after.keys():
        return None
    for key, value in after.items():
        if key not in SKIPPED and before[key] != value:
            return None
    changed: set[int] = set()
    old, new = before.get("counters", {}), after.get("counters", {})
    if old.keys() - new.keys():
        return None
    for period, values in new.items():
        if old.get(period) != values:
            changed.add(int(period.split("#")[0]))
    old, new = before.get("year_balances", {}), after.get("year_balances", {})
    if old.keys() - new.keys():
        return None
    moved = [int(year) for year, value in new.items() if old.get(year) != value]
    if moved:
        # a year's balance is the one at the end of it: a movement moves every later year without its own
        earliest = min(moved)
        changed.update(year for year in years if year >= earliest)
    return changed & years


_SUMMARY_COLUMNS = itemgetter(*COLUMNS[3:18])


def rows(
    member: MemberState,
    years: Iterable[int],
    registry: PolicyRegistry,
    counters: dict[str, dict[str, str]] | None = None,
) -> list[tuple]:
    """`counters`: the member's counters in the codec's JSON form (`ledger.codec.state_to_json`), when the caller
    has them already: each year's row keeps its periods' share of them."""
    result = []
    grouped = counters_by_year(member)
    region, member_id = member.region, member.member_id
    for year in sorted(years):
        periods = grouped.get(year, {})
        summary = year_summary(member, year, registry.for_year(region, year), periods)
        if counters is None:
            texts = {
                period: {name: str(value) for name, value in sorted(values.items())}
                for period, values in sorted(periods.items())
            }
        else:
            texts = {period: counters[period] for period in sorted(periods)}
        result.append((region, member_id, year, *_SUMMARY_COLUMNS(summary), orjson.dumps(texts).decode()))
    return result
