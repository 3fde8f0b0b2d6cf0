"""Reading the ledger: a member's statement, a settlement's calculation trace."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

import typer

from .. import display
from .app import audit_app, member_app
from .common import with_reports


@member_app.command("show")
def member_show(
    member_id: str,
    year: Annotated[Optional[int], typer.Option(help="Policy year (default: the latest with a settlement).")] = None,
    region: Annotated[Optional[str], typer.Option(help="Region code, when the member is known in several.")] = None,
) -> None:
    """A member's statement: enrolment, accumulators, limits remaining, incentive, account and settlements."""
    from ..reports import statements
    from .render import render_statement

    found = with_reports(lambda reads: statements(reads, member_id, year, region, date.today()))
    if not found:
        typer.echo(f"medledger: no member {member_id}" + (f" in region {region}" if region else ""), err=True)
        raise typer.Exit(1)
    console = display.console()
    for statement in found:
        render_statement(console, statement)


@audit_app.command("explain")
def audit_explain(settlement_id: str) -> None:
    """The full calculation trace of one settlement, rule by rule, with its source event and ledger position."""
    from ..reports import explain
    from .render import render_explain

    trace = with_reports(lambda reads: explain(reads, settlement_id))
    if trace is None:
        typer.echo(f"medledger: no settlement {settlement_id}", err=True)
        raise typer.Exit(1)
    render_explain(display.console(), trace)
