"""`medledger produce`: publish a contract file to the event topic, as a hospital or enrolment system would: each
event keyed by its region code, on the partition the configured partitioner gives that key (see `partitioning`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .broker import make_broker
from .partitioning import routing
from .settings import Settings
from .topics import partition_count

CHUNK = 5_000


async def produce(settings: Settings, lines: Iterable[bytes], topic: str | None = None) -> int:
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
                    headers={"content-type": "application/json"},
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
