"""The `medledger` command with the broker's commands added: serve, produce, report.

They live here, on the outer layer, so the ledger never imports the Kafka adapters.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Optional

import typer

from ledger.cli import app
from ledger.cli.common import (
    PARK_TTL_DAYS,
    ParametersOption,
    ParkTtlOption,
    open_events,
    parameters_text,
    prepared,
)

from .settings import Settings

BootstrapOption = Annotated[
    Optional[str],
    typer.Option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers."),
]


@app.command()
def serve(
    parameters: ParametersOption = None,
    bootstrap_servers: BootstrapOption = None,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of topics created at start-up.")] = 4,
    log_level: Annotated[str, typer.Option(envvar="MEDLEDGER_LOG_LEVEL")] = "INFO",
    park_ttl_days: ParkTtlOption = PARK_TTL_DAYS,
) -> None:
    """Consume the event topic into the ledger and publish the settlement and rejection topics, until SIGINT or
    SIGTERM. Settings come from the environment (see the README); JSON logs on stderr; /metrics for
    Prometheus."""
    from ledger.service import LedgerService

    from . import logs
    from .app import Service
    from .broker import run

    logs.configure(log_level)
    settings = Settings.from_env(bootstrap_servers=bootstrap_servers)
    text, source = parameters_text(parameters)
    park_ttl = timedelta(days=park_ttl_days)
    service = LedgerService(
        prepared(), text, source, batch_size=settings.batch_size, park_ttl=park_ttl, prepare_schema=False
    )
    asyncio.run(run(Service(settings, service, partitions).app))


@app.command()
def produce(
    events: Annotated[str, typer.Argument(help="JSON Lines file of contract events, or - for standard input.")],
    bootstrap_servers: BootstrapOption = None,
    topic: Annotated[Optional[str], typer.Option(help="Instead of MEDLEDGER_EVENTS_TOPIC.")] = None,
) -> None:
    """Publish EVENTS to the event topic, one message a line, keyed by member (region for region-level events)."""
    from .produce import produce as publish
    from .topics import ensure_topics

    settings = Settings.from_env(bootstrap_servers=bootstrap_servers)

    async def run(stream) -> int:
        await ensure_topics(settings)
        return await publish(settings, stream, topic)

    with open_events(events) as stream:
        sent = asyncio.run(run(stream))
    typer.echo(f"medledger: produced {sent} events to {topic or settings.events_topic}", err=True)


@app.command()
def watch(
    bootstrap_servers: BootstrapOption = None,
    rejections: Annotated[bool, typer.Option("--rejections", help="The rejection topic instead.")] = False,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Not only what arrives from now.")] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many records.")] = None,
) -> None:
    """Print the settlement topic (or the rejection topic) as it arrives, one JSON record a line."""
    import sys

    from aiokafka import AIOKafkaConsumer

    from .topics import security_options

    settings = Settings.from_env(bootstrap_servers=bootstrap_servers)
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
        try:
            async for record in consumer:
                sys.stdout.write(record.value.decode("utf-8", errors="replace") + "\n")
                sys.stdout.flush()
                shown += 1
                if limit is not None and shown >= limit:
                    return
        finally:
            await consumer.stop()

    try:
        asyncio.run(run())
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
    from . import logs
    from .broker import run
    from .reporting import Reporting, ReportingStore

    logs.configure(log_level)
    settings = Settings.from_env(bootstrap_servers=bootstrap_servers)
    asyncio.run(run(Reporting(settings, ReportingStore(_reporting_url())).app))


@app.command()
def report(
    region: Annotated[str, typer.Option(help="Region code, e.g. 320100.")],
    month: Annotated[str, typer.Option(help="YYYY-MM.")],
) -> None:
    """The month's figures from the reporting tables: visits, fund paid per pool (general / chronic), account and
    cash payments, by facility level."""
    from datetime import date

    from rich.console import Console
    from rich.table import Table

    from .reporting import ReportingStore

    try:
        first = date.fromisoformat(month + "-01")
    except ValueError:
        typer.echo(f"medledger: --month must be YYYY-MM, got {month!r}", err=True)
        raise typer.Exit(2) from None

    async def read():
        store = await ReportingStore(_reporting_url()).open()
        try:
            return await store.month(region, first)
        finally:
            await store.close()

    lines = asyncio.run(read())
    table = Table(title=f"medledger report: region {region}, {month}")
    for name in ("facility level", "visits", "reversals", "total", "fund general", "fund chronic", "account", "cash"):
        table.add_column(name, justify="left" if name == "facility level" else "right")
    for line in lines:
        table.add_row(*_cells(line, "—" if line.facility_level is None else str(line.facility_level)))
    if lines:
        table.add_row(*_cells(_sum(lines), "all"), style="bold")
    Console(width=160).print(table)


def _cells(line, label: str) -> list[str]:
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


def _sum(lines):
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
        if not isinstance(error, refused):
            raise
        typer.echo(f"medledger: Kafka: {error}", err=True)
        raise SystemExit(1) from None


def _refusals(kafka) -> tuple[type, ...]:
    return (
        kafka.KafkaConnectionError,
        kafka.AuthenticationFailedError,
        kafka.SaslAuthenticationFailed,
        kafka.AuthenticationMethodNotSupported,
        kafka.UnsupportedSaslMechanismError,
    )


if __name__ == "__main__":
    main()
