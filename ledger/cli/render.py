"""Printing what people read (`ledger.reports`): a member's statement and a settlement's calculation trace."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from policies.registry import REGION_NAMES
from policies.summary import status_word

from ..contract import POLICY_TZ
from ..display import visible
from ..reports import Statement, recorded_values, trace_position


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
