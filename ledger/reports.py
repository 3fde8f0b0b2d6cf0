"""What people read: a member's statement and the calculation trace of one settlement."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from policies.parameters import parse_parameters
from policies.recorded import policy_values
from policies.registry import REGION_NAMES, PolicyRegistry
from policies.summary import status_word

from .adoption import last_adoption
from .codec import state_from_json
from .contract import POLICY_TZ
from .db import fund_report
from .db.projection_store import as_json
from .display import visible


@dataclass
class Statement:
    region: str
    member_id: str
    year: int
    state: Any
    year_row: dict | None
    limits: dict[str, Decimal]
    settlements: list[dict] = field(default_factory=list)
    movements: list[dict] = field(default_factory=list)
    incentives: list[dict] = field(default_factory=list)


async def statements(raw, member_id: str, year: int | None, region: str | None, today: date) -> list[Statement]:
    query = "SELECT region, state FROM member_state WHERE member_id = $1"
    args: list[Any] = [member_id]
    if region:
        query += " AND region = $2"
        args.append(region)
    found = []
    for row_region, state in await raw.fetch(query + " ORDER BY region", *args):
        member = state_from_json(as_json(state))
        latest = await raw.fetchval(
            "SELECT max(visit_date) FROM ledger_settlements WHERE region = $1 AND member_id = $2", row_region, member_id
        )
        chosen = year or (latest.year if latest else today.year)
        as_of = min(date(chosen, 12, 31), max(today, date(chosen, 1, 1)))
        registry = await _registry(raw, row_region, member_id)
        policy = registry.for_year(row_region, chosen)
        limits = policy.rules.limits_remaining(member, as_of, policy.params) if policy else {}
        year_row = await raw.fetchrow(
            "SELECT * FROM member_year WHERE region = $1 AND member_id = $2 AND year = $3",
            row_region,
            member_id,
            chosen,
        )
        settlements = [
            as_json(r[0])
            for r in await raw.fetch(
                "SELECT record FROM ledger_settlements WHERE region = $1 AND member_id = $2 "
                "AND visit_date BETWEEN $3 AND $4 ORDER BY seq, settlement_id",
                row_region,
                member_id,
                date(chosen, 1, 1),
                date(chosen, 12, 31),
            )
        ]
        movements = [
            {**as_json(r[0]), "occurred_at": r[1]}
            for r in await raw.fetch(
                "SELECT m.record, e.occurred_at FROM ledger_movements m JOIN ledger_events e ON e.seq = m.seq "
                "WHERE m.region = $1 AND m.member_id = $2 AND e.occurred_at >= $3 AND e.occurred_at < $4 "
                "ORDER BY m.seq, m.movement_id",
                row_region,
                member_id,
                datetime(chosen, 1, 1, tzinfo=POLICY_TZ),
                datetime(chosen + 1, 1, 1, tzinfo=POLICY_TZ),
            )
        ]
        incentives = [
            as_json(r[0])
            for r in await raw.fetch(
                "SELECT record FROM ledger_incentives WHERE region = $1 AND member_id = $2 ORDER BY seq",
                row_region,
                member_id,
            )
        ]
        found.append(
            Statement(
                row_region,
                member_id,
                chosen,
                member,
                dict(year_row) if year_row else None,
                limits,
                settlements,
                movements,
                incentives,
            )
        )
    return found


async def _registry(raw, region: str, member_id: str) -> PolicyRegistry:
    """The parameters the member's state was last settled under, as member_year is written (another region's
    events, ingested later under other parameters, do not change this member's limits)."""
    content = await raw.fetchval(
        "SELECT p.content FROM member_state m JOIN ledger_events e ON e.seq = m.last_seq "
        "JOIN parameter_sets p ON p.digest = e.params_digest WHERE m.region = $1 AND m.member_id = $2",
        region,
        member_id,
    )
    return _registry_of(content or "")


@lru_cache(maxsize=32)
def _registry_of(content: str) -> PolicyRegistry:
    """A recorded parameter set never changes: parsed once per process (a page shows many statements)."""
    return PolicyRegistry(parse_parameters(content))


def render_statement(console: Console, statement: Statement) -> None:
    member, row = statement.state, statement.year_row or {}
    end = date(statement.year, 12, 31)
    status = member.status_on(end)
    header = Table.grid(padding=(0, 2))
    header.add_row("member", f"{visible(statement.member_id)} ({REGION_NAMES[statement.region]} {statement.region})")
    header.add_row(
        "enrolment",
        f"{status_word(member, end)} from {member.enrolled_on}, "
        f"{status.insurance_type} / {status.person_type.replace('_', ' ')}",
    )
    if member.retired_on:
        header.add_row("retired", f"procedure completed {member.retired_on}; retiree rules from the next month")
    if member.terminated_on:
        header.add_row("terminated", f"{member.terminated_on} ({member.termination_reason})")
    closed = " (closed)" if member.account_closed else ""
    if row.get("balance") is not None and row["balance"] != member.balance:
        header.add_row(f"account balance {statement.year}", f"{row['balance']} at the end of the year")
        header.add_row("account balance now", f"{member.balance}{closed}")
    else:
        header.add_row("account balance", f"{member.balance}{closed}")
    if statement.region == "371000":
        header.add_row("incentive", f"ratio bonus {member.bonus_points} points (001 第十二条)")
    if statement.region == "320100":
        header.add_row("incentive", f"health streak {member.health_streak} year(s) (002 第七条)")
    console.print(Panel(header, title=f"statement {statement.year}", expand=False))

    figures = Table(title=f"accumulators {statement.year}", show_header=False)
    for label, column in (
        ("deductible paid", "deductible_paid"),
        ("chronic deductible paid", "chronic_deductible_paid"),
        ("general fund paid", "general_fund_paid"),
        ("chronic fund paid", "chronic_fund_paid"),
        ("capped base used", "capped_base_used"),
        ("chronic base used", "chronic_base_used"),
        ("band position", "band_position"),
        ("chronic pool", "chronic_pool"),
        ("external fund paid", "external_fund_paid"),
    ):
        value = row.get(column)
        if value not in (None, Decimal("0"), Decimal("0.00")):
            figures.add_row(label, str(value))
    for label, value in statement.limits.items():
        figures.add_row(f"remaining: {label}", str(value))
    console.print(figures)

    if statement.settlements:
        table = Table(title="settlements")
        for column in ("date", "visit", "policy", "total", "deductible", "fund", "pool", "account", "cash"):
            table.add_column(column)
        for s in statement.settlements:
            table.add_row(
                s["visit_date"],
                visible(s["visit_id"]) + (" (reversal)" if s.get("reverses") else ""),
                s["policy_id"],
                s["total_amount"],
                s["deductible_paid"],
                s["fund_paid"],
                s["fund_pool"],
                s["account_paid"],
                s["cash_paid"],
            )
        console.print(table)
        for s in statement.settlements:
            console.print(
                Panel(
                    "\n".join(map(visible, s["explanation"])),
                    title=f"{visible(s['visit_id'])} {s['settlement_id']}",
                    expand=False,
                )
            )
    if statement.movements:
        table = Table(title="account movements")
        for column in ("when", "kind", "purpose", "amount", "balance", "beneficiary"):
            table.add_column(column)
        for m in statement.movements:
            table.add_row(
                str(m["occurred_at"].astimezone(POLICY_TZ).date()),  # the business date, as policy rules see it
                m["kind"],
                m["purpose"],
                m["amount"],
                m["balance_after"],
                visible(m.get("beneficiary_id") or ""),
            )
        console.print(table)
    for incentive in statement.incentives:
        console.print(
            f"year close {incentive['year']}: {incentive['incentive']} {incentive['before']} → "
            f"{incentive['after']}; " + "; ".join(map(visible, incentive["explanation"]))
        )


async def explain(raw, settlement_id: str) -> dict | None:
    row = await raw.fetchrow(
        "SELECT s.record, s.deltas, s.seq, e.event_id, e.payload, e.params_digest, e.hash, e.recorded_at, e.source "
        "FROM ledger_settlements s JOIN ledger_events e ON e.seq = s.seq WHERE s.settlement_id = $1",
        settlement_id,
    )
    if row is None:
        return None
    result = dict(row)
    result["record"], result["deltas"] = as_json(row["record"]), as_json(row["deltas"])
    original = result["record"].get("reverses")
    if original:
        result["original"] = as_json(
            await raw.fetchval("SELECT record FROM ledger_settlements WHERE settlement_id = $1", original)
        )
    result["parameters"] = await raw.fetchval(
        "SELECT content FROM parameter_sets WHERE digest = $1", row["params_digest"]
    )
    result["adopted"] = await last_adoption(raw, before=row["seq"])
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


def render_explain(console: Console, trace: dict) -> None:
    s = trace["record"]
    summary = Table.grid(padding=(0, 2))
    for label, key in (
        ("visit", "visit_id"),
        ("member", "member_id"),
        ("date", "visit_date"),
        ("policy", "policy_id"),
        ("total", "total_amount"),
        ("out of catalogue", "out_of_catalog_amount"),
        ("pre self-pay", "pre_self_pay_amount"),
        ("in policy", "in_policy_amount"),
        ("deductible", "deductible_paid"),
        ("fund", "fund_paid"),
        ("pool", "fund_pool"),
        ("ratio", "fund_ratio"),
        ("copay", "copay_amount"),
        ("over limit", "over_limit_amount"),
        ("member share", "member_share"),
        ("account", "account_paid"),
        ("cash", "cash_paid"),
        ("limit remaining", "limit_remaining"),
    ):
        summary.add_row(label, visible(s.get(key)))
    if s.get("reverses"):
        summary.add_row("reverses", s["reverses"])
    steps = "\n".join(f"{i}. {visible(line)}" for i, line in enumerate(s["explanation"], start=1))
    moved = "\n".join(f"{period} {name}: {amount}" for period, name, amount in trace["deltas"]) or "(nothing)"
    console.print(Panel(Group(summary), title=f"settlement {s['settlement_id']}", expand=False))
    console.print(Panel(steps, title="calculation, rule by rule", expand=False))
    console.print(Panel(moved, title="accumulators moved", expand=False))
    # Identifiers an auditor copies: printed whole, never wrapped.
    for label, value in trace_position(trace):
        console.print(f"{label}: {value}", soft_wrap=True, highlight=False)
    shown = recorded_values(trace)
    if shown is not None:
        console.print(Panel("\n".join(shown), title=f"parameters of {s['policy_id']} as recorded", expand=False))
    source = json.dumps(json.loads(trace["payload"]), ensure_ascii=False, indent=2)
    console.print(Panel("\n".join(map(visible, source.splitlines())), title="source event", expand=False))


async def clearing_statement(raw, region: str, first: date) -> list[dict]:
    """The month's clearing statement (清算): per designated facility, the visits, reversals, total, fund paid per
    pool, account and cash payments the fund clears with it; `medledger report --by facility` prints it."""
    return await fund_report.month_by_facility(raw, region, first)


async def fund_month(raw, region: str, first: date) -> list[dict]:
    """The month by facility level, from the ledger: the figures `medledger report` prints from the reporting
    tables."""
    return await fund_report.month_by_level(raw, region, first)
