"""The typer application and the sub-command groups the command modules hang on it."""

from __future__ import annotations

import inspect
from typing import Any

import typer
import typer.core
import typer.rich_utils

from ..display import output_width
from ..runtime import tune_garbage_collector

# Help not cut at 80 columns when it goes to a pipe or a file (TERMINAL_WIDTH, typer's own setting, still wins).
if typer.rich_utils.MAX_WIDTH is None:
    typer.rich_utils.MAX_WIDTH = output_width()


def _flag_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """A flag (--help, --from-beginning) takes no value, so no type is shown beside it; other options as typer
    shows them."""
    return None if self.is_flag else _option_type(self, ctx)


def _command_line(*, help_text: str, markup_mode: typer.rich_utils.MarkupModeStrict) -> object:
    """A command's line in its group's list: the first paragraph of its docstring as one paragraph, rewrapped to
    the width (typer would keep the docstring's own line breaks and break the lines twice)."""
    first = inspect.cleandoc(help_text).split("\n\n")[0]
    return _command_help(help_text=" ".join(first.split()), markup_mode=markup_mode)


_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]
_command_help = typer.rich_utils._make_command_help
typer.rich_utils._make_command_help = _command_line  # type: ignore[assignment]

app = typer.Typer(
    help="medledger: settlement ledger for outpatient mutual-aid (门诊共济保障) schemes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _process() -> None:
    tune_garbage_collector()


def _group(name: str, purpose: str) -> typer.Typer:
    """A sub-command group; `purpose` is its line in `medledger --help`: what the group is for."""
    group = typer.Typer(help=purpose, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


member_app = _group(
    "member", "Look up one member in the ledger: their year's accumulators, limits left, account and settlements."
)
audit_app = _group("audit", "For auditors: how one settlement was computed, rule by rule, from its source event.")
db_app = _group("db", "Maintain the ledger's PostgreSQL database: apply its schema migrations.")
projections_app = _group(
    "projections",
    "The read models derived from the ledger (member years, fund totals): rebuild them from the ledger alone.",
)
parked_app = _group("parked", "Events waiting for their member's enrolment: refuse the ones that waited too long.")
outbox_app = _group(
    "outbox", "The copies of published records kept for the topics' relay: prune the ones it has published."
)
keys_app = _group(
    "keys", "Producers' signing keys (Ed25519): make a producer's key pair, or a key set to try medledger with."
)
