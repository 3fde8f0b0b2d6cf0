"""What the commands share: parameter files, progress bars, the database."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from policies.parameters import ParameterError, ParameterSet, load_parameters, parse_parameters
from policies.registry import PolicyRegistry

from .. import runtime
from ..codec import dumps
from .output import CHUNK, print_bytes

if TYPE_CHECKING:
    from ..db.connection import Raw
    from ..db.server import Database
    from ..recorder import ReportReads

T = TypeVar("T")

ParametersOption = Annotated[
    Optional[Path],
    typer.Option(
        "--parameters",
        "-p",
        envvar="MEDLEDGER_PARAMETERS",
        help="TOML parameter file overriding policy parameters.",
        exists=True,
        dir_okay=False,
    ),
]


# One parking time for every command that settles: each runs the sweep (ingest at its start, serve every minute),
# so a command with a parking time of its own would undo what the operator chose.
ParkTtlOption = Annotated[
    float,
    typer.Option(
        "--park-ttl-days",
        envvar="MEDLEDGER_PARK_TTL_DAYS",
        min=0,
        max=36_500,
        help="Refuse an event that waited longer than this many days for its member's enrolment.",
    ),
]


# How much later than its arrival an event may say it occurred (clocks disagree a little): `ledger.arrival`.
MaxClockSkewOption = Annotated[
    float,
    typer.Option(
        "--max-clock-skew-seconds",
        envvar="MEDLEDGER_MAX_CLOCK_SKEW_SECONDS",
        min=0,
        max=86_400,
        help="Refuse (implausible) an event whose occurred_at is later than its arrival by more than this.",
    ),
]


MAX_CLOCK_SKEW_SECONDS = 600  # ledger.arrival.DEFAULT_MAX_CLOCK_SKEW

PARK_TTL_DAYS = 30  # ledger.service.DEFAULT_PARK_TTL, named here so that a command starts without importing it


def parameters_file(path: Path | None) -> ParameterSet | None:
    if path is None:
        return None
    try:
        parameters = load_parameters(path)
        PolicyRegistry(parameters)  # refuses unknown policy ids and values of the wrong shape up front
        return parameters
    except (ParameterError, OSError, ValueError) as error:
        typer.echo(f"medledger: bad parameter file {path}: {error}", err=True)
        raise typer.Exit(2) from None


def replay_members() -> int:
    """`MEDLEDGER_REPLAY_MEMBERS`, checked before a replay starts (`db.held_members`)."""
    from ..db.held_members import held_setting

    try:
        return held_setting()
    except ValueError as error:
        typer.echo(f"medledger: {error}", err=True)
        raise typer.Exit(2) from None


def parameters_text(path: Path | None) -> tuple[str, str | None]:
    if path is None:
        return "", None
    text = path.read_text(encoding="utf-8")
    try:
        PolicyRegistry(parse_parameters(text, str(path)))
    except ParameterError as error:
        typer.echo(f"medledger: bad parameter file {path}: {error}", err=True)
        raise typer.Exit(2) from None
    return text, str(path)


class _Bar:
    def __init__(self, progress: Progress | None = None, task: TaskID | None = None):
        self.progress, self.task = progress, task

    def advance(self, step: float = 1) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, step)

    def reached(self, done: float, total: float) -> None:
        """For replays: `done` of `total` events."""
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=done, total=total)


@contextmanager
def progress_bar(description: str, total: float | None) -> Iterator[_Bar]:
    """A rich progress bar on standard error when it is a terminal; silent otherwise (CI logs, pipes)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield _Bar()
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # What the command prints on a terminal shows above the bar; printed to a file or a pipe, it goes there.
        redirect_stdout=sys.stdout.isatty(),
    ) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))


def database() -> Database:
    from ..db.credentials import UnsafeSecret
    from ..db.server import locate

    try:
        return locate()
    except UnsafeSecret as error:
        refuse(error)


def refuse(error: Exception) -> NoReturn:
    """One line saying what is wrong, and exit 2: a start refused is not a crash."""
    typer.echo(f"medledger: {error}", err=True)
    raise typer.Exit(2) from None


def prepared() -> Database:
    """The database, its schema current; a clear message instead of a traceback when it cannot be."""
    from ..db.credentials import UnsafeSecret
    from ..db.migrate import SchemaNotCurrent, prepare

    db = database()
    try:
        prepare(db)
    except (SchemaNotCurrent, UnsafeSecret) as error:
        refuse(error)
    return db


def with_reports(work: Callable[[ReportReads], Awaitable[T]]) -> T:
    """Run `work(reads)` with the service database's report reads (`recorder.ReportReads`)."""
    from ..db.report_reads import PostgresReportReads

    return with_raw(lambda raw: work(PostgresReportReads(raw)))


def with_raw(work: Callable[[Raw], Awaitable[T]]) -> T:
    """Run `work(raw asyncpg connection)` against the service database."""
    from ..db.connect import close_pool, lent, service_pool

    db = prepared()

    async def run() -> T:
        pool = await service_pool(db)
        try:
            async with lent(pool) as raw:
                return await work(raw)
        finally:
            await close_pool(pool)

    return runtime.run(run())


def print_records(records: Iterable[dict]) -> None:
    """Print records, one JSON line each, in one write (`output`)."""
    print_bytes("".join(dumps(record) + "\n" for record in records).encode())


def print_file(path: str | Path) -> None:
    """Print a file of records written by a worker, a mebibyte a write."""
    with open(path, "rb") as printed:
        while chunk := printed.read(CHUNK):
            print_bytes(chunk)


def open_events(events: str) -> BinaryIO:
    """The events file, or standard input for "-"; a clear message and exit 2 when it cannot be read."""
    if events == "-":
        return sys.stdin.buffer
    try:
        return open(events, "rb")
    except OSError as error:
        typer.echo(f"medledger: cannot read {events}: {error.strerror}", err=True)
        raise typer.Exit(2) from None
