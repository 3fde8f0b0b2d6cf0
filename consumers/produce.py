"""`medledger produce`: publish a contract file to the event topic, as a hospital or enrolment system would: each
event keyed by its region code, on the partition the configured partitioner gives that key (see `partitioning`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ledger.authority import Signer, signer_from

from .broker import make_broker
from .partitioning import routing
from .settings import Settings
from .topics import partition_count

CHUNK = 5_000


async def produce(
    settings: Settings, lines: Iterable[bytes], topic: str | None = None, signer: Signer | None = None
) -> int:
    """Each line signed by `signer` (by default the producer and key of `settings`): its id, key id and signature
    in the record's headers (`ledger.authority`)."""
    signer = signer or signer_from(settings.producer, settings.producer_key, settings.producer_key_id)
    topic = topic or settings.events_topic
    partitions = await partition_count(settings, topic)
    broker = make_broker(settings)
    await broker.connect()
    sent = 0
    try:
        pending = []
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            key, partition = routing(line, partitions, settings.partitioner)
            pending.append(
                await broker.publish(
                    line,
                    topic=topic,
                    key=key,
                    partition=partition,
                    headers={"content-type": "application/json", **signer.headers(line)},
                    no_confirm=True,
                )
            )
            if len(pending) >= CHUNK:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending = []
        await asyncio.gather(*pending)
        sent += len(pending)
    finally:
        await broker.stop()
    return sent
