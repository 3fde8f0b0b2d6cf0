"""The `medledger` command with the broker's commands added: serve, produce, report.

They live here, on the outer layer, so the ledger never imports the Kafka adapters.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Optional

import typer

from ledger.cli import app
from ledger.cli.common import ParametersOption, open_events, parameters_text, prepared

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
) -> None:
    """Consume the event topic into the ledger and publish the settlement and rejection topics, until SIGINT or
    SIGTERM. Settings come from the environment (see the README); JSON logs on stderr; /metrics for
    Prometheus."""
    from ledger.service import LedgerService

    from . import logs
    from .app import Service

    logs.configure(log_level)
    settings = Settings.from_env(bootstrap_servers=bootstrap_servers)
    text, source = parameters_text(parameters)
    service = LedgerService(prepared(), text, source, batch_size=settings.batch_size, prepare_schema=False)
    asyncio.run(Service(settings, service, partitions).app.run())


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
