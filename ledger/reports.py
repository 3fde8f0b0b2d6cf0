"""What people read: a member's statement and the calculation trace of one settlement, as the ledger holds them
(read through `recorder.ReportReads`; `ledger.cli.render` prints them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from policies.member import MemberState
from policies.parameters import parse_parameters
from policies.recorded import policy_values
from policies.registry import PolicyRegistry

from .codec import state_from_json
from .contract import POLICY_TZ
from .display import visible
from .recorder import ReportReads


@dataclass
class Statement:
    region: str
    member_id: str
    year: int
    state: MemberState
    year_row: dict | None
    limits: dict[str, Decimal]
    settlements: list[dict] = field(default_factory=list)
    movements: list[dict] = field(default_factory=list)
    incentives: list[dict] = field(default_factory=list)


async def statements(
    reads: ReportReads, member_id: str, year: int | None, region: str | None, today: date
) -> list[Statement]:
    found = []
    for row_region, state in await reads.member_states(member_id, region):
        member = state_from_json(state)
        latest = await reads.latest_visit(row_region, member_id)
        chosen = year or (latest.year if latest else today.year)
        as_of = min(date(chosen, 12, 31), max(today, date(chosen, 1, 1)))
        # The parameters the member's state was last settled under, as member_year is written (another region's
        # events, ingested later under other parameters, do not change this member's limits).
        registry = _registry_of(await reads.member_parameters(row_region, member_id) or "")
        policy = registry.for_year(row_region, chosen)
        limits = policy.rules.limits_remaining(member, as_of, policy.params) if policy else {}
        found.append(
            Statement(
                row_region,
                member_id,
                chosen,
                member,
                await reads.member_year(row_region, member_id, chosen),
                limits,
                await reads.settlements(row_region, member_id, date(chosen, 1, 1), date(chosen, 12, 31)),
                await reads.movements(
                    row_region,
                    member_id,
                    datetime(chosen, 1, 1, tzinfo=POLICY_TZ),
                    datetime(chosen + 1, 1, 1, tzinfo=POLICY_TZ),
                ),
                await reads.incentives(row_region, member_id),
            )
        )
    return found


@lru_cache(maxsize=32)
def _registry_of(content: str) -> PolicyRegistry:
    """A recorded parameter set never changes: parsed once per process (a page shows many statements)."""
    return PolicyRegistry(parse_parameters(content))


async def explain(reads: ReportReads, settlement_id: str) -> dict | None:
    result = await reads.settlement_trace(settlement_id)
    if result is None:
        return None
    original = result["record"].get("reverses")
    if original:
        result["original"] = await reads.settlement(original)
    result["parameters"] = await reads.parameters(result["params_digest"])
    result["adopted"] = await reads.last_adoption(before=result["seq"])
    return result


def trace_position(trace: dict) -> list[tuple[str, object]]:
    """Where a settlement stands in the ledger, as (label, value): its sequence, event, hash and parameter set."""
    values = policy_values(trace["parameters"], trace["record"]["policy_id"])
    if values is not None:
        parameters = "every value in force, recorded with the event"
        if trace["adopted"] is not None:
            seq, digest = trace["adopted"]
            if digest == trace["params_digest"]:
                parameters += f"; adopted in the chain at ledger sequence {seq}"
            else:  # what `replay --verify` reports as a difference
                parameters += f"; NOT the set the chain adopted at ledger sequence {seq} ({digest})"
    elif trace["parameters"]:
        parameters = "the parameter file recorded with the event; other values: the defaults of the release then"
    else:
        parameters = "the built-in defaults of the release then"
    return [
        ("ledger sequence", trace["seq"]),
        ("event", f"{visible(trace['event_id'])} from {visible(trace['source'])}"),
        ("event hash", bytes(trace["hash"]).hex()),
        ("parameters", f"{trace['params_digest']} ({parameters})"),
    ]


def recorded_values(trace: dict) -> list[str] | None:
    """Every value of the settlement's policy in force, as recorded with its event: `name = json` lines."""
    values = policy_values(trace["parameters"], trace["record"]["policy_id"])
    if values is None:
        return None
    return [
        f"{name} = {'(unset)' if value is None else json.dumps(value, ensure_ascii=False)}"
        for name, value in values.items()
    ]


async def clearing_statement(reads: ReportReads, region: str, first: date) -> list[dict]:
    """The month's clearing statement (清算): per designated facility, the visits, reversals, total, fund paid per
    pool, account and cash payments the fund clears with it; `medledger report --by facility` prints it."""
    return await reads.month_by_facility(region, first)


async def fund_month(reads: ReportReads, region: str, first: date) -> list[dict]:
    """The month by facility level, from the ledger: the figures `medledger report` prints from the reporting
    tables."""
    return await reads.month_by_level(region, first)
