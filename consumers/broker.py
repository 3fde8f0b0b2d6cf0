"""The Kafka connection as a FastStream broker: the consumers', the gateway's, and `produce`'s publishing."""

from __future__ import annotations

import contextlib
import logging

from faststream import FastStream
from faststream.kafka import KafkaBroker

from .settings import Settings


def make_broker(settings: Settings, logger: logging.Logger | None = None, consumer_only: bool = False) -> KafkaBroker:
    """`consumer_only`: no producer and no admin client of the broker's own, for an application that only consumes
    through it (the relay has its own producer). Its credentials then need no write or admin rights, and a refused
    start leaves no half-started producer behind."""
    # acks=all with idempotence: a record the relay counts as sent is on every in-sync replica, and a retried send
    # neither duplicates nor reorders within a partition.
    return KafkaBroker(
        settings.bootstrap_servers,
        security=settings.security(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        compression_type=None,
        allow_auto_create_topics=False,
        client_id="medledger",
        logger=logger or logging.getLogger("medledger.kafka"),
        graceful_timeout=30.0,
        # Handlers get the Kafka records as they are: the ledger decodes and validates them itself.
        apply_types=False,
        consumer_only=consumer_only,
    )


async def run(app: FastStream) -> None:
    """`app.run()`, and when the start itself fails (a refused connection, say), the application stopped as after
    a run. FastStream would leave the start-up hooks' resources and a subscriber whose consumer did not start open."""
    started = False

    async def mark() -> None:
        nonlocal started
        started = True

    app.after_startup(mark)
    try:
        await app.run()
    except Exception:
        if not started:
            with contextlib.suppress(Exception):
                await app.stop()
        raise
