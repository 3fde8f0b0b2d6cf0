"""The durable ledger's commands: ingest, replay, rebuild, sweep, upgrade."""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table as RichTable

from .. import display, runtime
from ..display import visible
from .app import app, db_app, outbox_app, parked_app, projections_app
from .common import (
    MAX_CLOCK_SKEW_SECONDS,
    PARK_TTL_DAYS,
    MaxClockSkewOption,
    ParametersOption,
    ParkTtlOption,
    database,
    open_events,
    parameters_text,
    prepared,
    print_file,
    print_records,
    progress_bar,
    refuse,
    replay_members,
    with_raw,
)
from .keys import KeyIdOption, KeyOption, ProducerOption, authority, signer

if TYPE_CHECKING:
    from ..authority import Authority, Signer
    from ..db.outbox import Pruned
    from ..db.server import Database
    from ..intake import Incoming, Oversized
    from ..parallel_ingest import Shares
    from ..replay import ReplayReport
    from ..service import IngestStats


def signed_lines(items: Iterable[Incoming], signing: Signer | None) -> Iterator[Incoming]:
    """Each line of a file signed by the producer it is ingested as (the bytes of the line, without its end)."""
    for item in items:
        if signing is not None:
            item.claimed = signing.sign(item.raw.encode())
        yield item


@app.command()
def ingest(
    events: Annotated[str, typer.Argument(help="JSON Lines file of contract events, or - for standard input.")],
    parameters: ParametersOption = None,
    # 1,000 against 2,500 at 922,554 events with two workers: 8% less CPU, and 266 against 385 MB at peak
    # (docs/benchmarks.md); fewer rows held at once, and fewer of them walked by each step.
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 1_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
    park_ttl_days: ParkTtlOption = PARK_TTL_DAYS,
    max_clock_skew_seconds: MaxClockSkewOption = MAX_CLOCK_SKEW_SECONDS,
    producer: ProducerOption = None,
    key: KeyOption = None,
    key_id: KeyIdOption = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            max=64,
            help="Processes ingesting the file's regions at once, each region in input order (default: the "
            "machine's cores; standard input is read by one). The ledger is the same as with one; the output is "
            "printed by worker, each region's in input order.",
        ),
    ] = None,
) -> None:
    """Append EVENTS to the durable ledger and settle them; print what `settle` prints, and a `parked` line for
    an event that waits for its member's enrolment. Safe to run twice on the same file: an event already in the
    ledger is acknowledged and not applied again. With a producers file (MEDLEDGER_PRODUCERS), the file is the
    events of one producer: --producer and --key sign each line as it, and what it may not send is refused
    (`unauthorized`) and kept. Once the ledger keeps signatures (it has taken signed events), ingest does not run
    without them."""
    from ..intake import from_lines, read_lines
    from ..service import EarlierProjections, LedgerService

    producers = authority()
    signing = None
    if producers is not None or producer or key:
        if producers is None:
            typer.echo("medledger: --producer and --key are checked against MEDLEDGER_PRODUCERS: set it", err=True)
            raise typer.Exit(2)
        signing = signer(producer, key, key_id)
    text, source = parameters_text(parameters)
    name = "stdin" if events == "-" else events
    stream = open_events(events)
    db = prepared()

    size = None if events == "-" else Path(events).stat().st_size
    from ..parallel_ingest import default_workers, shares

    if events != "-" and (workers or default_workers()) > 1:
        split = shares(events, workers or default_workers())
        if len(split.groups) > 1:
            stream.close()
            total = _ingest_regions(
                db,
                events,
                split,
                text,
                source,
                batch_size,
                park_ttl_days,
                max_clock_skew_seconds,
                quiet,
                producers,
                signing,
            )
            _summary(total)
            return

    with progress_bar(f"ingest {name}", size) as bar:

        def counted(lines: Iterable[bytes | Oversized]) -> Iterator[bytes | Oversized]:
            for line in lines:
                bar.advance(len(line))
                yield line

        async def run() -> IngestStats | None:
            async with LedgerService(
                db,
                text,
                source,
                batch_size=batch_size,
                park_ttl=timedelta(days=park_ttl_days),
                prepare_schema=False,
                authority=producers,
                max_clock_skew=timedelta(seconds=max_clock_skew_seconds),
            ) as service:
                if producers is None and await service.keeps_signatures():
                    return None  # refused before anything is swept or appended
                with stream:
                    lines = from_lines(counted(read_lines(stream)), name, structs=True)
                    return await service.ingest(signed_lines(lines, signing), None if quiet else print_records)

        try:
            stats = runtime.run(run())
        except EarlierProjections as error:
            refuse(error)
    if stats is None:
        typer.echo(
            "medledger: this ledger keeps producers' signatures, so every event it takes must be signed: set "
            "MEDLEDGER_PRODUCERS and give --producer and --key (nothing was ingested)",
            err=True,
        )
        raise typer.Exit(2)
    _summary(stats)


def _summary(stats: IngestStats) -> None:
    typer.echo(
        f"medledger: read {stats.read}, appended {stats.appended}, duplicates {stats.duplicates}, "
        f"settlements {stats.settlements}, movements {stats.movements}, rejected {stats.rejected}, "
        f"parked {stats.parked}, expired {stats.expired}, resettled {stats.resettled}",
        err=True,
    )


def _ingest_regions(
    db: Database,
    events: str,
    split: Shares,
    text: str,
    source: str | None,
    batch_size: int,
    park_ttl_days: float,
    max_clock_skew_seconds: float,
    quiet: bool,
    producers: Authority | None,
    signing: Signer | None,
) -> IngestStats:
    """`ingest --workers`: the file's regions shared among processes (`ledger.parallel_ingest`); their stats
    summed, what each published printed after it, worker by worker."""
    from ..parallel_ingest import Part, ingest_in_parallel, outputs
    from ..service import EarlierProjections, IngestStats, LedgerService

    async def unsigned_refused() -> bool:
        async with LedgerService(db, text, source, prepare_schema=False) as service:
            return producers is None and await service.keeps_signatures()

    try:
        refused = runtime.run(unsigned_refused())
    except EarlierProjections as error:
        refuse(error)
    if refused:
        typer.echo(
            "medledger: this ledger keeps producers' signatures, so every event it takes must be signed: set "
            "MEDLEDGER_PRODUCERS and give --producer and --key (nothing was ingested)",
            err=True,
        )
        raise typer.Exit(2)
    directory, files = outputs(len(split.groups), quiet)
    try:
        parts = [
            Part(
                events,
                group,
                worker,
                split.marks,
                text,
                source,
                batch_size,
                park_ttl_days,
                max_clock_skew_seconds,
                output,
            )
            for worker, (group, output) in enumerate(zip(split.groups, files, strict=True))
        ]
        total = IngestStats()
        for stats in ingest_in_parallel(db, parts, producers=producers, signing=signing):
            total.merge(stats)
        for output in files:
            if output is not None:
                print_file(output)
        return total
    finally:
        if directory is not None:
            directory.cleanup()


def _anchor(text: str) -> tuple[int | str, str]:
    """SEQ:HASH, a stream's head (or any event's hash); root:HASH, the root hash over the streams' heads."""
    from ..streams import ROOT

    seq, _, digest = text.partition(":")
    if (
        not (seq.isdigit() or seq == ROOT)
        or len(digest) != 64
        or any(c not in "0123456789abcdefABCDEF" for c in digest)
    ):
        typer.echo(f"medledger replay: --anchor wants SEQ:HASH or root:HASH (64 hex digits), got {text!r}", err=True)
        raise typer.Exit(2)
    return (ROOT if seq == ROOT else int(seq)), digest.lower()


@app.command()
def replay(
    verify: Annotated[bool, typer.Option("--verify", help="Re-derive everything and compare with the ledger.")] = False,
    policy: Annotated[
        Optional[Path], typer.Option("--policy", help="Parameter file for a what-if run.", exists=True, dir_okay=False)
    ] = None,
    compare: Annotated[bool, typer.Option("--compare", help="With --policy: report the fund impact.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per batch.")] = 2_000,  # replay.REPLAY_BATCH
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="With --verify: processes, each replaying some of the regions.")
    ] = 2,
    anchor: Annotated[
        Optional[str],
        typer.Option(
            metavar="SEQ:HASH|root:HASH",
            help="With --verify: a stream's head or the root hash printed by an earlier verify and kept outside the "
            "database; the chains must still pass through it.",
        ),
    ] = None,
    regions: Annotated[
        Optional[list[str]],
        typer.Option(
            "--region",
            help="With --verify, on a server a region was moved to: this database holds these regions alone (no "
            "history, no other region); their streams are verified from their genesis and their events replayed.",
        ),
    ] = None,
) -> None:
    """Walk the ledger again without touching it: --verify, or --policy FILE --compare (what-if). --verify also
    checks every producer's signature kept with the events again, with the producers file (MEDLEDGER_PRODUCERS)."""
    from ..replay import Replayer, verify_in_parallel

    if verify == bool(policy) or (verify and compare):
        typer.echo("medledger replay: give --verify, or --policy FILE --compare", err=True)
        raise typer.Exit(2)
    if (anchor or regions) and not verify:
        typer.echo("medledger replay: --anchor and --region go with --verify", err=True)
        raise typer.Exit(2)
    anchored = _anchor(anchor) if anchor else None
    if policy and not compare:
        typer.echo("medledger replay: --policy needs --compare (a what-if never changes the ledger)", err=True)
        raise typer.Exit(2)
    producers = authority() if verify else None
    replay_members()
    db = prepared()
    console = display.console()
    started_at = datetime.now(UTC)
    with progress_bar("replay", None) as bar:
        replayer = Replayer(db, batch_size=batch_size, progress=bar.reached)
        replayer.anchor = anchored
        if verify and regions:
            replayer.of_regions_alone(regions)
            report = runtime.run(replayer.verify(producers))
        elif verify and workers > 1:
            from ..db.audit import event_counts

            counts = with_raw(event_counts)
            report = verify_in_parallel(
                db, batch_size, workers, counts, progress=bar.reached, anchor=anchored, authority=producers
            )
        elif verify:
            report = runtime.run(replayer.verify(producers))
        else:
            text, source = parameters_text(policy)
            report = runtime.run(replayer.compare(text, source))
    if verify:
        _keep(db, report, started_at)
        console.print(f"replayed {report.replayed()}")
        console.print(f"hash chain: {'intact' if not report.chain_breaks else f'{len(report.chain_breaks)} break(s)'}")
        # Kept outside the database, any of these pins the ledger as it is now (`--anchor`): a stream's head its
        # stream, the root hash every stream.
        for head in report.heads:
            if head.position:
                name = "history" if head.region == "*" else head.region
                console.print(
                    f"head {name}: {head.seq}:{head.hash.hex()} (event {head.position} of its stream)", soft_wrap=True
                )
        if report.head is not None:
            console.print(f"root: root:{report.head[1].hex()} (over {len(report.heads)} streams)", soft_wrap=True)
        for broken in report.chain_breaks[:20]:
            console.print(f"  seq {broken.seq}: {visible(broken.problem)}")
        if report.signatures is None:
            console.print("signatures: not checked (no producers file: MEDLEDGER_PRODUCERS)")
        else:
            console.print(f"signatures: {report.signatures} checked again")
        console.print(f"re-derived records: {report.difference_count} difference(s)")
        for found in report.differences[:50]:
            console.print(f"  seq {found.seq} {visible(found.what)}: {visible(found.detail)}")
        for name, count in report.projection_differences.items():
            console.print(f"projection {name}: {'identical' if count == 0 else f'{count} row(s) differ'}")
            for found in (row for row in report.projection_rows if row.what.split(" ", 1)[0] == name):
                console.print(f"  {visible(found.what)}: {visible(found.detail)}")
        console.print("verified" if report.ok else "NOT verified", style="bold green" if report.ok else "bold red")
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
    console.print(
        f"replayed {report.replayed()}: {report.changed_settlements} settlement(s) change; "
        f"fund {total_before} → {total_after} ({total_after - total_before:+})"
    )


def _keep(db: Database, report: ReplayReport, started_at: datetime) -> None:
    """The verification kept where the console's integrity page shows the last one from, as the owner: the
    service's role may not write it."""
    import asyncpg

    from ..replay import keep_verification

    if db.owner_url is None:
        typer.echo(
            "medledger replay: the result is not kept for the console (that needs the owner's DATABASE_URL)", err=True
        )
        return
    try:
        user = f"replay --verify ({getpass.getuser()})"
    except (OSError, KeyError):  # no name for this process's user
        user = "replay --verify"

    from ..db.server import dsn

    owner_dsn = dsn(db.owner_url)

    async def run() -> None:
        connection = await asyncpg.connect(owner_dsn)
        try:
            await keep_verification(connection, report, user, started_at)
        finally:
            await connection.close()

    try:
        runtime.run(run())
    except (OSError, asyncpg.PostgresError) as error:  # the verdict is printed all the same
        typer.echo(f"medledger replay: the result is not kept for the console: {error}", err=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations and give each region its partitions (both also run on every start)."""
    from ..db.credentials import UnsafeSecret
    from ..db.migrate import upgrade

    db = database()
    if not db.owner_url:
        typer.echo("medledger: db upgrade needs the owner's DATABASE_URL", err=True)
        raise typer.Exit(2)
    try:
        made = upgrade(db.owner_url, passwords=db.passwords)
    except UnsafeSecret as error:
        refuse(error)
    for region, moved in made.items():
        typer.echo(f"medledger: region {region} has partitions of its own ({moved} rows moved from DEFAULT)", err=True)
    typer.echo("medledger: database schema is current", err=True)


@projections_app.command("rebuild")
def projections_rebuild(
    batch_size: Annotated[int, typer.Option(min=1, help="Events per batch.")] = 2_000,  # replay.REPLAY_BATCH
) -> None:
    """Drop every projection and rebuild it from the ledger alone."""
    from ..db.credentials import UnsafeSecret
    from ..db.server import maintenance
    from ..replay import Replayer

    replay_members()
    try:  # as the maintenance role: the service's own may not empty a projection
        db = maintenance(prepared())
    except UnsafeSecret as error:
        refuse(error)
    with progress_bar("rebuild", None) as bar:
        report = runtime.run(Replayer(db, batch_size=batch_size, progress=bar.reached).rebuild())
    typer.echo(f"medledger: projections rebuilt from {report.replayed()}", err=True)


@parked_app.command("sweep")
def parked_sweep(park_ttl_days: ParkTtlOption = PARK_TTL_DAYS) -> None:
    """Refuse parked events that waited too long: they are appended to the ledger and rejected with the reason."""
    from ..service import EarlierProjections, LedgerService

    db = prepared()

    async def run() -> IngestStats:
        async with LedgerService(db, park_ttl=timedelta(days=park_ttl_days), prepare_schema=False) as service:
            return await service.sweep(on_published=print_records)

    try:
        stats = runtime.run(run())
    except EarlierProjections as error:
        refuse(error)
    typer.echo(f"medledger: {stats.expired} parked event(s) refused", err=True)


@outbox_app.command("prune")
def outbox_prune(
    keep_days: Annotated[
        int, typer.Option(min=0, max=36_500, help="Keep a published record this many days after it was recorded.")
    ] = 7,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be pruned; delete nothing.")] = False,
) -> None:
    """Delete the outbox's records that every relay has published and that are older than --keep-days, oldest
    first, up to the first that is not both. A record not yet published is never deleted; the ledger keeps what
    each record was made from. As the maintenance role, like projections rebuild."""
    import asyncpg

    from ..db.credentials import UnsafeSecret
    from ..db.outbox import PruneStopped, UntrustedRelay, prune
    from ..db.server import dsn, maintenance

    try:
        db = maintenance(prepared(), "pruning the outbox")
    except UnsafeSecret as error:
        refuse(error)
    before = datetime.now(UTC) - timedelta(days=keep_days)

    async def run() -> Pruned:
        connection = await asyncpg.connect(dsn(db.app_url))
        try:
            return await prune(connection, before, dry_run=dry_run)
        finally:
            await connection.close()

    try:
        pruned = runtime.run(run())
    except PruneStopped as stopped:
        typer.echo(f"medledger: {stopped}", err=True)
        raise typer.Exit(1) from None
    except (OSError, asyncpg.PostgresError, UntrustedRelay) as error:
        refuse(error)
    if pruned.published is None:
        typer.echo("medledger: no relay has published from the outbox yet; nothing pruned", err=True)
        return
    if pruned.newest is None:
        typer.echo("medledger: the outbox is empty; nothing pruned", err=True)
        return
    kept = f"published through position {pruned.published}, newest {pruned.newest}"
    if pruned.through is None:
        typer.echo(
            f"medledger: nothing to prune ({kept}): the oldest record was recorded within {keep_days} day(s), or is "
            "the last one published",
            err=True,
        )
        return
    verb = "would prune" if dry_run else "pruned"
    typer.echo(
        f"medledger: {verb} {pruned.records} outbox record(s) through position {pruned.through} ({kept})", err=True
    )
