"""The typer application and the sub-command groups the command modules hang on it."""

from __future__ import annotations

import typer

from ..runtime import tune_garbage_collector

app = typer.Typer(
    help="medledger: settlement ledger for outpatient mutual-aid (门诊共济保障) schemes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _process() -> None:
    tune_garbage_collector()


member_app = typer.Typer(help="Members.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
projections_app = typer.Typer(help="Read models.", no_args_is_help=True)
parked_app = typer.Typer(help="Events waiting for their member's enrolment.", no_args_is_help=True)
app.add_typer(member_app, name="member")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(projections_app, name="projections")
keys_app = typer.Typer(help="Producers' keys.", no_args_is_help=True)
app.add_typer(parked_app, name="parked")
app.add_typer(keys_app, name="keys")
