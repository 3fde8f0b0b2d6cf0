"""Per member and year: deductible, fund paid per pool, capped base, band position, chronic pool and its use,
incentive state, balance and enrolment status."""

from __future__ import annotations

import orjson

from policies.member import MemberState
from policies.registry import PolicyRegistry
from policies.summary import counters_by_year, year_summary

COLUMNS = (
    "region",
    "member_id",
    "year",
    "status",
    "insurance_type",
    "person_type",
    "deductible_paid",
    "chronic_deductible_paid",
    "general_fund_paid",
    "chronic_fund_paid",
    "capped_base_used",
    "chronic_base_used",
    "band_position",
    "chronic_pool",
    "external_fund_paid",
    "bonus_points",
    "health_streak",
    "balance",
    "counters",
    "last_seq",
)


def rows(member: MemberState, years, registry: PolicyRegistry, last_seq: int) -> list[tuple]:
    result = []
    grouped = counters_by_year(member)
    for year in sorted(years):
        periods = grouped.get(year, {})
        summary = year_summary(member, year, registry.for_year(member.region, year), periods)
        counters = {
            period: {name: str(value) for name, value in sorted(values.items())}
            for period, values in sorted(periods.items())
        }
        result.append(
            (
                member.region,
                member.member_id,
                year,
                *(summary[c] for c in COLUMNS[3:18]),
                orjson.dumps(counters).decode(),
                last_seq,
            )
        )
    return result
