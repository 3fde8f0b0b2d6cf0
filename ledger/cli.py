"""The `medledger` command."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from policies.parameters import ParameterError, load_parameters, parse_parameters
from policies.registry import PolicyRegistry

from .contract import contract_json_schema
from .offline import dumps, settle_stream
from .runtime import tune_garbage_collector

app = typer.Typer(
    help="medledger: settlement ledger for outpatient mutual-aid (门诊共济保障) schemes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

@app.callback()
def _process() -> None:
    tune_garbage_collector()


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
    """Append EVENTS to the durable ledger and settle them; print what `settle` prints, and a `parked` line for
    an event that waits for its member's enrolment. Safe to run twice on the same file: an event already in the
    ledger is acknowledged and not applied again."""
    from .intake import from_lines
    from .service import LedgerService

    text, source = _parameters_text(parameters)
    name = "stdin" if events == "-" else events
    stream = sys.stdin.buffer if events == "-" else open(events, "rb")
    db = _prepared()

    size = None if events == "-" else Path(events).stat().st_size

    with progress_bar(f"ingest {name}", size) as bar:

        def publish(records: list[dict]) -> None:
            if not quiet:
                for record in records:
                    sys.stdout.write(dumps(record))
                    sys.stdout.write("\n")

        def counted(lines):
            for line in lines:
                bar.advance(len(line))
                yield line

        async def run():
            async with LedgerService(db, text, source, batch_size=batch_size, prepare_schema=False) as service:
                with stream:
                    return await service.ingest(from_lines(counted(stream), name), publish)

        stats = asyncio.run(run())
    typer.echo(
        f"medledger: read {stats.read}, appended {stats.appended}, duplicates {stats.duplicates}, "
        f"settlements {stats.settlements}, movements {stats.movements}, rejected {stats.rejected}, "
        f"parked {stats.parked}, expired {stats.expired}",
        err=True,
    )


class _Bar:
    def __init__(self, progress: Progress | None = None, task=None):
        self.progress, self.task = progress, task

    def advance(self, step: float = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, step)

    def reached(self, done: float, total: float) -> None:
        """For replays: `done` of `total` ledger positions."""
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)


@contextmanager
def progress_bar(description: str, total: float | None):
    """A rich progress bar on standard error when it is a terminal; silent otherwise (CI logs, pipes)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield _Bar()
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))


def _database():
    from .db.server import locate

    return locate()


def _prepared():
    """The database, its schema current; a clear message instead of a traceback when it cannot be."""
    from .db.migrate import SchemaNotCurrent, prepare

    db = _database()
    try:
        prepare(db)
    except SchemaNotCurrent as error:
        typer.echo(f"medledger: {error}", err=True)
        raise typer.Exit(2) from None
    return db


def _with_raw(work):
    """Run `work(raw asyncpg connection)` against the service database."""
    from .db.connect import service_engine
    from .db.event_store import driver

    db = _prepared()

    async def run():
        engine = service_engine(db)
        try:
            async with engine.connect() as connection:
                return await work(await driver(connection))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command()
def replay(
    verify: Annotated[bool, typer.Option("--verify", help="Re-derive everything and compare with the ledger.")] = False,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Parameter file for a what-if run.",
                                                   exists=True, dir_okay=False)] = None,
    compare: Annotated[bool, typer.Option("--compare", help="With --policy: report the fund impact.")] = False,
    batch_size: Annotated[int, typer.Option(help="Events per batch.")] = 5_000,
) -> None:
    """Walk the ledger again without touching it: --verify, or --policy FILE --compare (what-if)."""
    from .replay import Replayer

    if verify == bool(policy):
        typer.echo("medledger replay: give --verify, or --policy FILE --compare", err=True)
        raise typer.Exit(2)
    if policy and not compare:
        typer.echo("medledger replay: --policy needs --compare (a what-if never changes the ledger)", err=True)
        raise typer.Exit(2)
    db = _prepared()
    console = Console()
    with progress_bar("replay", None) as bar:
        replayer = Replayer(db, batch_size=batch_size, progress=bar.reached)
        if verify:
            report = asyncio.run(replayer.verify())
        else:
            text, source = _parameters_text(policy)
            report = asyncio.run(replayer.compare(text, source))
    if verify:
        console.print(f"replayed {report.events} events")
        console.print(f"hash chain: {'intact' if not report.chain_breaks else f'{len(report.chain_breaks)} break(s)'}")
        for found in report.chain_breaks[:20]:
            console.print(f"  seq {found.seq}: {found.problem}")
        console.print(f"re-derived records: {report.difference_count} difference(s)")
        for found in report.differences[:50]:
            console.print(f"  seq {found.seq} {found.what}: {found.detail}")
        for name, count in report.projection_differences.items():
            console.print(f"projection {name}: {'identical' if count == 0 else f'{count} row(s) differ'}")
        console.print("[bold green]verified[/]" if report.ok else "[bold red]NOT verified[/]")
        raise typer.Exit(0 if report.ok else 1)
    table = RichTable(title=f"what-if fund impact: {policy}")
    for column in ("region", "pool", "month", "ledger", "what-if", "change"):
        table.add_column(column, justify="right" if column in ("ledger", "what-if", "change") else "left")
    for (region, pool, month), (before, after) in sorted(report.fund_impact.items()):
        if before != after:
            table.add_row(region, pool, month.strftime("%Y-%m"), str(before), str(after), f"{after - before:+}")
    console.print(table)
    total_before = sum((v[0] for v in report.fund_impact.values()), Decimal("0.00"))
    total_after = sum((v[1] for v in report.fund_impact.values()), Decimal("0.00"))
    console.print(f"{report.events} events replayed, {report.changed_settlements} settlement(s) change; "
                  f"fund {total_before} → {total_after} ({total_after - total_before:+})")


member_app = typer.Typer(help="Members.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
projections_app = typer.Typer(help="Read models.", no_args_is_help=True)
parked_app = typer.Typer(help="Events waiting for their member's enrolment.", no_args_is_help=True)
app.add_typer(member_app, name="member")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(projections_app, name="projections")
app.add_typer(parked_app, name="parked")


@member_app.command("show")
def member_show(
    member_id: str,
    year: Annotated[Optional[int], typer.Option(help="Policy year (default: the latest with a settlement).")] = None,
    region: Annotated[Optional[str], typer.Option(help="Region code, when the member is known in several.")] = None,
) -> None:
    """A member's statement: enrolment, accumulators, limits remaining, incentive, account and settlements."""
    from .reports import render_statement, statements

    found = _with_raw(lambda raw: statements(raw, member_id, year, region, date.today()))
    if not found:
        typer.echo(f"medledger: no member {member_id}" + (f" in region {region}" if region else ""), err=True)
        raise typer.Exit(1)
    console = Console()
    for statement in found:
        render_statement(console, statement)


@audit_app.command("explain")
def audit_explain(settlement_id: str) -> None:
    """The full calculation trace of one settlement, rule by rule, with its source event and ledger position."""
    from .reports import explain, render_explain

    trace = _with_raw(lambda raw: explain(raw, settlement_id))
    if trace is None:
        typer.echo(f"medledger: no settlement {settlement_id}", err=True)
        raise typer.Exit(1)
    render_explain(Console(), trace)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (they also run on every start)."""
    from .db.migrate import upgrade

    db = _database()
    if not db.owner_url:
        typer.echo("medledger: db upgrade needs the owner's DATABASE_URL", err=True)
        raise typer.Exit(2)
    upgrade(db.owner_url)
    typer.echo("medledger: database schema is current", err=True)


@projections_app.command("rebuild")
def projections_rebuild(batch_size: Annotated[int, typer.Option(help="Events per batch.")] = 5_000) -> None:
    """Drop every projection and rebuild it from the ledger alone."""
    from .replay import Replayer

    db = _prepared()
    with progress_bar("rebuild", None) as bar:
        report = asyncio.run(Replayer(db, batch_size=batch_size, progress=bar.reached).rebuild())
    typer.echo(f"medledger: projections rebuilt from {report.events} ledger events", err=True)


@parked_app.command("sweep")
def parked_sweep(
    ttl_days: Annotated[float, typer.Option(help="Refuse events parked longer than this many days.")] = 30,
) -> None:
    """Refuse parked events that waited too long: they are appended to the ledger and rejected with the reason."""
    from datetime import timedelta

    from .service import LedgerService

    db = _prepared()

    async def run():
        async with LedgerService(db, park_ttl=timedelta(days=ttl_days), prepare_schema=False) as service:
            return await service.sweep(on_published=lambda records: [
                sys.stdout.write(dumps(r) + "\n") for r in records])

    stats = asyncio.run(run())
    typer.echo(f"medledger: {stats.expired} parked event(s) refused", err=True)


if __name__ == "__main__":
    app()
