"""The `medledger` command with the broker's commands added: serve, gateway, produce, report.

They live here, on the outer layer, so the ledger never imports the Kafka adapters.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

import console.cli  # noqa: E402, F401  `medledger console` and `medledger users`, on the same command
from ledger import runtime
from ledger.cli import app
from ledger.cli.common import (
    MAX_CLOCK_SKEW_SECONDS,
    PARK_TTL_DAYS,
    MaxClockSkewOption,
    ParametersOption,
    ParkTtlOption,
    open_events,
    parameters_text,
    prepared,
    refuse,
)
from ledger.cli.keys import KeyIdOption, KeyOption, ProducerOption, signer

if TYPE_CHECKING:
    from .reporting import Line
    from .settings import Settings

BootstrapOption = Annotated[
    Optional[str],
    typer.Option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers."),
]


def _broker_settings(bootstrap_servers: str | None) -> Settings:
    """The broker's settings from the environment. Imported here, not with the command: faststream (and what it
    loads) is for the commands that use the broker, not for every run of `medledger`."""
    from .settings import Settings

    return Settings.from_env(bootstrap_servers=bootstrap_servers)


@app.command()
def serve(
    parameters: ParametersOption = None,
    bootstrap_servers: BootstrapOption = None,
    partitions: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="MEDLEDGER_PARTITIONS",
            help="Partitions of the event topic, which each region's partition is computed with; topics missing at "
            "start-up are created with as many. serve does not start if the event topic has another count.",
        ),
    ] = 4,
    log_level: Annotated[str, typer.Option(envvar="MEDLEDGER_LOG_LEVEL")] = "INFO",
    park_ttl_days: ParkTtlOption = PARK_TTL_DAYS,
    max_clock_skew_seconds: MaxClockSkewOption = MAX_CLOCK_SKEW_SECONDS,
) -> None:
    """Consume the event topic into the ledger and publish the settlement and rejection topics, until SIGINT or
    SIGTERM. Settings come from the environment (see the README); JSON logs on stderr; /metrics for
    Prometheus."""
    from consumers.broker import run
    from ledger.db.instances import InstanceInUse
    from ledger.service import EarlierProjections, LedgerService

    from . import logs
    from .app import Service

    logs.configure(log_level)
    settings = _broker_settings(bootstrap_servers)
    text, source = parameters_text(parameters)
    park_ttl = timedelta(days=park_ttl_days)
    service = LedgerService(
        prepared(),
        text,
        source,
        batch_size=settings.batch_size,
        park_ttl=park_ttl,
        prepare_schema=False,
        max_clock_skew=timedelta(seconds=max_clock_skew_seconds),
    )
    try:
        serving = Service(settings, service, partitions)
    except ValueError as error:  # no producers file or ledger key, or one that cannot be read
        typer.echo(f"medledger serve: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        runtime.run(run(serving.app))
    except (EarlierProjections, InstanceInUse) as error:  # from the start-up, before anything is consumed
        typer.echo(f"medledger serve: {error}", err=True)
        raise typer.Exit(2) from None
    if serving.lost is not None:  # its instance's lock, taken by another process while it ran
        typer.echo(f"medledger serve: stopped: {serving.lost}", err=True)
        raise typer.Exit(2)


async def _opened(service: Any) -> None:
    """Open and close `service` once: what its start refuses is refused before a server starts."""
    async with service:
        pass


@app.command("gateway")
def gateway_command(
    parameters: ParametersOption = None,
    bootstrap_servers: BootstrapOption = None,
    host: Annotated[Optional[str], typer.Option(envvar="MEDLEDGER_GATEWAY_HOST", help="Default 127.0.0.1.")] = None,
    port: Annotated[Optional[int], typer.Option(envvar="MEDLEDGER_GATEWAY_PORT", help="Default 8090.")] = None,
    ssl_certfile: Annotated[Optional[str], typer.Option(help="TLS certificate (PEM), as uvicorn takes it.")] = None,
    ssl_keyfile: Annotated[Optional[str], typer.Option(help="TLS private key (PEM).")] = None,
    log_level: Annotated[str, typer.Option(envvar="MEDLEDGER_LOG_LEVEL")] = "INFO",
) -> None:
    """Answer the national platform's settlement interface over HTTP (POST /fsi/api/rsfComIfsService/callService)
    until SIGINT or SIGTERM: settlements go through the event topic into the ledger that `serve` keeps. Keys in
    MEDLEDGER_GATEWAY_KEYS, reference data in MEDLEDGER_GATEWAY_REFERENCE (see docs/national-interface.md)."""
    import uvicorn

    from gateway.app import create_app
    from gateway.core import Gateway
    from gateway.settings import GatewaySettings, gateway_database
    from ledger.db.migrate import SchemaNotCurrent, prepare
    from ledger.enquiry import LedgerReader
    from ledger.service import EarlierProjections

    from . import logs

    logs.configure(log_level)
    try:
        settings = GatewaySettings.from_env(host=host, port=port)
    except ValueError as error:
        typer.echo(f"medledger: {error}", err=True)
        raise typer.Exit(2) from None
    text, source = parameters_text(parameters)
    try:  # it reads the ledger as its own role, which may write nothing there
        db = gateway_database(prepared)
        prepare(db)  # the schema it reads is current
    except (ValueError, SchemaNotCurrent) as error:
        refuse(error)
    ledger = LedgerReader(db, text, source, wait=settings.wait_seconds)  # a message waits no longer for a connection
    try:  # the gateway signs what it produces as a producer of its own: without its key it cannot start
        gateway = Gateway(settings, _broker_settings(bootstrap_servers), ledger)
    except ValueError as error:
        typer.echo(f"medledger gateway: {error}", err=True)
        raise typer.Exit(2) from None
    try:  # what the gateway quotes, it settles on: not on member states of an earlier release
        runtime.run(_opened(ledger))
    except EarlierProjections as error:
        typer.echo(f"medledger gateway: {error}", err=True)
        raise typer.Exit(2) from None
    app_ = create_app(gateway)
    uvicorn.run(
        app_,
        host=settings.host,
        port=settings.port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        access_log=False,
        log_config=None,
        lifespan="on",
    )


@app.command()
def produce(
    events: Annotated[str, typer.Argument(help="JSON Lines file of contract events, or - for standard input.")],
    bootstrap_servers: BootstrapOption = None,
    topic: Annotated[Optional[str], typer.Option(help="Instead of MEDLEDGER_EVENTS_TOPIC.")] = None,
    producer: ProducerOption = None,
    key: KeyOption = None,
    key_id: KeyIdOption = None,
) -> None:
    """Publish EVENTS to the event topic, one message a line, keyed by its region code, on the partition
    MEDLEDGER_PARTITIONER (murmur2 unless set) gives that key, each signed as the producer (--producer, --key: its
    id, key id and signature in the record's headers). A line larger than the topic takes is reported and skipped,
    the rest produced (exit 1 if any was skipped); an unreachable broker is waited for MEDLEDGER_BROKER_WAIT_SECONDS
    (default 60) before the command fails."""
    from .produce import ProduceFailed
    from .produce import produce as publish

    settings = _broker_settings(bootstrap_servers)
    signing = signer(producer, key, key_id)

    def skip(skipped: object) -> None:
        typer.echo(f"medledger produce: {skipped}", err=True)

    with open_events(events) as stream:
        try:
            produced = runtime.run(publish(settings, stream, topic, signing, on_skip=skip, create_topics=True))
        except (ProduceFailed, LookupError) as error:
            typer.echo(f"medledger produce: {error}", err=True)
            raise typer.Exit(1) from None
    skipped = f"; {len(produced.skipped)} line(s) skipped, too large for the topic" if produced.skipped else ""
    typer.echo(f"medledger: produced {produced.sent} events to {topic or settings.events_topic}{skipped}", err=True)
    if produced.skipped:
        raise typer.Exit(1)


@app.command()
def watch(
    bootstrap_servers: BootstrapOption = None,
    rejections: Annotated[bool, typer.Option("--rejections", help="The rejection topic instead.")] = False,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Not only what arrives from now.")] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many records.")] = None,
    until_idle: Annotated[
        Optional[float],
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="Stop (exit 0) once nothing new has arrived for this many seconds; without it, watch runs until "
            "interrupted.",
        ),
    ] = None,
) -> None:
    """Print the settlement topic (or the rejection topic) as it arrives, one JSON record a line."""
    import sys

    from aiokafka import AIOKafkaConsumer

    from consumers.topics import security_options

    settings = _broker_settings(bootstrap_servers)
    topic = settings.rejections_topic if rejections else settings.settlements_topic

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
            **security_options(settings),
        )
        await consumer.start()
        shown = 0
        loop = asyncio.get_running_loop()
        last_arrival = loop.time()
        try:
            while until_idle is None or loop.time() - last_arrival < until_idle:
                waited = 1.0 if until_idle is None else max(0.05, min(1.0, until_idle - (loop.time() - last_arrival)))
                batches = await consumer.getmany(timeout_ms=int(waited * 1000))
                for record in (record for batch in batches.values() for record in batch):
                    sys.stdout.write(record.value.decode("utf-8", errors="replace") + "\n")
                    shown += 1
                    if limit is not None and shown >= limit:
                        sys.stdout.flush()
                        return
                if batches:
                    sys.stdout.flush()
                    last_arrival = loop.time()
        finally:
            await consumer.stop()

    try:
        runtime.run(run())
    except KeyboardInterrupt:
        pass


def _reporting_url() -> str:
    """MEDLEDGER_REPORTING_DATABASE_URL, or else the ledger's own database as medledger_reporting, a role that
    keeps to the `reporting` schema (MEDLEDGER_REPORTING_PASSWORD where the server wants one)."""
    from ledger.cli.common import refuse
    from ledger.db.credentials import UnsafeSecret, check_url, database_url, secret
    from ledger.db.server import REPORTING_ROLE, with_user

    try:
        configured = database_url("MEDLEDGER_REPORTING_DATABASE_URL", "MEDLEDGER_REPORTING_PASSWORD")
        if configured:
            return configured
        db = prepared()
        if db.owner_url is None:
            raise typer.BadParameter(
                "with only the service's own database URL, reporting needs MEDLEDGER_REPORTING_DATABASE_URL"
            )
        password = secret("MEDLEDGER_REPORTING_PASSWORD") or db.passwords.get(REPORTING_ROLE)
        configured = with_user(db.owner_url, REPORTING_ROLE, password)
        check_url(configured, "MEDLEDGER_REPORTING_PASSWORD")
    except UnsafeSecret as error:
        refuse(error)
    return configured


@app.command()
def reporting(
    bootstrap_servers: BootstrapOption = None,
    log_level: Annotated[str, typer.Option(envvar="MEDLEDGER_LOG_LEVEL")] = "INFO",
) -> None:
    """Run the downstream reporting consumer: the settlement topic into the reporting tables, until SIGINT or
    SIGTERM."""
    from consumers.broker import run

    from . import logs
    from .reporting import Reporting, ReportingStore

    logs.configure(log_level)
    settings = _broker_settings(bootstrap_servers)
    try:
        application = Reporting(settings, ReportingStore(_reporting_url())).app
    except ValueError as error:  # no public key of the ledger, or one that cannot be read
        typer.echo(f"medledger reporting: {error}", err=True)
        raise typer.Exit(2) from None
    runtime.run(run(application))


@app.command()
def reconcile() -> None:
    """Compare the reporting tables with the ledger: fund paid, settlements and reversals per region, month and
    pool, and the records the reporting consumer refused. Exit 1 when they differ."""
    from ledger.cli.common import with_raw
    from ledger.db.projection_store import fund_by_pool

    from .reporting import ReportingStore

    async def read() -> tuple[dict[tuple[str, date, str], tuple[Decimal, int, int]], dict[str, int]]:
        store = await ReportingStore(_reporting_url()).open()
        try:
            return await store.fund_by_pool(), await store.dead_letters()
        finally:
            await store.close()

    reported, dead = runtime.run(read())
    ledger = with_raw(fund_by_pool)
    differing = sorted(key for key in ledger.keys() | reported.keys() if ledger.get(key) != reported.get(key))
    for region, month, pool in differing:
        typer.echo(
            f"{region} {month:%Y-%m} {pool}: ledger {_totals(ledger.get((region, month, pool)))}, "
            f"report {_totals(reported.get((region, month, pool)))}"
        )
    refused = ", ".join(f"{count} {reason}" for reason, count in sorted(dead.items())) or "none"
    typer.echo(f"dead letters: {refused}")
    typer.echo(f"reconciled: {len(ledger)} region-month-pools, {len(differing)} differ")
    if differing:
        raise typer.Exit(1)


def _totals(found: tuple[Decimal, int, int] | None) -> str:
    if found is None:
        return "nothing"
    fund, settlements, reversals = found
    return f"fund {fund:.2f}, {settlements} settlements, {reversals} reversals"


@app.command()
def report(
    region: Annotated[str, typer.Option(help="Region code, e.g. 320100.")],
    month: Annotated[str, typer.Option(help="YYYY-MM.")],
    by: Annotated[
        str,
        typer.Option(
            help="level: the reporting tables' figures by facility level; facility: the ledger's clearing "
            "statement (清算), per designated facility."
        ),
    ] = "level",
) -> None:
    """The month's figures: visits, reversals, total, fund paid per pool (general / chronic), account and cash
    payments, by facility level (from the reporting tables) or per facility (from the ledger)."""
    from datetime import date

    from rich.table import Table

    from ledger import display

    from .reporting import Line, ReportingStore

    try:
        first = date.fromisoformat(month + "-01")
    except ValueError:
        typer.echo(f"medledger: --month must be YYYY-MM, got {month!r}", err=True)
        raise typer.Exit(2) from None
    if by not in ("level", "facility"):
        typer.echo(f"medledger: --by must be level or facility, got {by!r}", err=True)
        raise typer.Exit(2)

    if by == "facility":
        from ledger.cli.common import with_reports
        from ledger.reports import clearing_statement

        rows = with_reports(lambda reads: clearing_statement(reads, region, first))
        labelled = [(display.visible(row.pop("facility_id") or "—"), Line(None, **row)) for row in rows]
        title, first_column = f"medledger report: region {region}, {month}, clearing statement", "facility"
    else:

        async def read() -> list[Line]:
            store = await ReportingStore(_reporting_url()).open()
            try:
                return await store.month(region, first)
            finally:
                await store.close()

        labelled = [
            ("—" if line.facility_level is None else str(line.facility_level), line) for line in runtime.run(read())
        ]
        title, first_column = f"medledger report: region {region}, {month}", "facility level"
    table = Table(title=title)
    for name in (first_column, "visits", "reversals", "total", "fund general", "fund chronic", "account", "cash"):
        table.add_column(name, justify="left" if name == first_column else "right")
    for label, line in labelled:
        table.add_row(*_cells(line, label))
    if labelled:
        table.add_row(*_cells(_sum([line for _, line in labelled]), "all"), style="bold")
    display.console(width=160).print(table)  # facility ids are producers' text: shown as written


def _cells(line: Line, label: str) -> list[str]:
    return [
        label,
        str(line.visits),
        str(line.reversals),
        f"{line.total_amount:.2f}",
        f"{line.fund_general:.2f}",
        f"{line.fund_chronic:.2f}",
        f"{line.account_paid:.2f}",
        f"{line.cash_paid:.2f}",
    ]


def _sum(lines: list[Line]) -> Line:
    from .reporting import Line

    return Line(
        None,
        *(sum(getattr(line, name) for line in lines) for name in Line.__dataclass_fields__ if name != "facility_level"),
    )


def main() -> None:
    import sys

    try:
        app()
    except Exception as error:
        # A broker that cannot be reached, or refuses our credentials or certificate, is the operator's to fix:
        # one line saying so, not a traceback (aiokafka has logged each address it tried and why above it). Any
        # other error keeps its traceback. Only a command that used Kafka has aiokafka loaded; the others do not
        # pay for importing it here.
        kafka = sys.modules.get("aiokafka.errors")
        refused = () if kafka is None else _refusals(kafka)
        routing = sys.modules.get("consumers.routing")  # an event topic with partitions serve is not set for
        refused += () if routing is None else (routing.PartitionCountChanged,)
        if not isinstance(error, refused):
            raise
        typer.echo(f"medledger: Kafka: {error}", err=True)
        raise SystemExit(1) from None


def _refusals(kafka: Any) -> tuple[type, ...]:
    return (
        kafka.KafkaConnectionError,
        kafka.AuthenticationFailedError,
        kafka.SaslAuthenticationFailed,
        kafka.AuthenticationMethodNotSupported,
        kafka.UnsupportedSaslMechanismError,
    )


if __name__ == "__main__":
    main()
