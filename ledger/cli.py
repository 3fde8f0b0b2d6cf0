"""The `medledger` command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from policies.parameters import ParameterError, load_parameters, parse_parameters
from policies.registry import PolicyRegistry

from .contract import contract_json_schema
from .offline import dumps, settle_stream

app = typer.Typer(
    help="medledger: settlement ledger for outpatient mutual-aid (门诊共济保障) schemes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ParametersOption = Annotated[
    Optional[Path],
    typer.Option("--parameters", "-p", help="TOML parameter file overriding policy parameters.", exists=True, dir_okay=False),
]


def _parameters(path: Path | None):
    if path is None:
        return None
    try:
        parameters = load_parameters(path)
        PolicyRegistry(parameters)  # refuses unknown policy ids and values of the wrong shape up front
        return parameters
    except (ParameterError, OSError, ValueError) as error:
        typer.echo(f"medledger: bad parameter file {path}: {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def settle(
    events: Annotated[str, typer.Argument(help="JSON Lines file of contract events, or - for standard input.")],
    parameters: ParametersOption = None,
) -> None:
    """Settle EVENTS in order with an in-memory state; print one JSON line per settlement, movement,
    incentive evaluation and rejection. Rejections never stop the run."""
    params = _parameters(parameters)
    source = sys.stdin.buffer if events == "-" else open(events, "rb")
    out = sys.stdout
    with source:
        for record in settle_stream(source, params):
            out.write(dumps(record))
            out.write("\n")


@app.command()
def schema(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write the JSON Schema of the event contract."""
    text = json.dumps(contract_json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _parameters_text(path: Path | None) -> tuple[str, str | None]:
    if path is None:
        return "", None
    text = path.read_text(encoding="utf-8")
    try:
        PolicyRegistry(parse_parameters(text, str(path)))
    except ParameterError as error:
        typer.echo(f"medledger: bad parameter file {path}: {error}", err=True)
        raise typer.Exit(2) from None
    return text, str(path)


@app.command()
def ingest(
    events: Annotated[str, typer.Argument(help="JSON Lines file of contract events, or - for standard input.")],
    parameters: ParametersOption = None,
    batch_size: Annotated[int, typer.Option(help="Events per transaction.")] = 2_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
) -> None:
    """Append EVENTS to the durable ledger and settle them; print the same lines as `settle`. Safe to run
    twice on the same file: an event already in the ledger is acknowledged and not applied again."""
    from .db.server import locate
    from .intake import from_lines
    from .service import LedgerService

    text, source = _parameters_text(parameters)
    name = "stdin" if events == "-" else events
    stream = sys.stdin.buffer if events == "-" else open(events, "rb")
    db = locate()

    def publish(records: list[dict]) -> None:
        if not quiet:
            for record in records:
                sys.stdout.write(dumps(record))
                sys.stdout.write("\n")

    async def run():
        async with LedgerService(db, text, source, batch_size=batch_size) as service:
            with stream:
                return await service.ingest(from_lines(stream, name), publish)

    stats = asyncio.run(run())
    typer.echo(
        f"medledger: read {stats.read}, appended {stats.appended}, duplicates {stats.duplicates}, "
        f"settlements {stats.settlements}, movements {stats.movements}, rejected {stats.rejected}, "
        f"parked {stats.parked}, expired {stats.expired}",
        err=True,
    )


if __name__ == "__main__":
    app()
