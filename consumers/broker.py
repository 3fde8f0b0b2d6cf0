"""The Kafka connection: one FastStream broker for consuming and for the relay's publishing."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from .settings import Settings


def make_broker(settings: Settings, logger: logging.Logger | None = None) -> KafkaBroker:
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
    )
