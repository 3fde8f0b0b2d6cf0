"""`medledger produce`: publish a contract file to the event topic, as a hospital or enrolment system would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson

from .broker import make_broker
from .settings import Settings

CHUNK = 5_000


def key_of(line: bytes) -> bytes | None:
    """The partition key: the member, or the region for a region-level event. Unreadable input is sent as it is,
    without a key, so that the ledger refuses it with the reason and keeps it."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    key = event.get("member_id") or event.get("region")
    return key.encode() if isinstance(key, str) else None


async def produce(settings: Settings, lines: Iterable[bytes], topic: str | None = None) -> int:
    broker = make_broker(settings)
    await broker.connect()
    sent = 0
    try:
        pending = []
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            pending.append(
                await broker.publish(
                    line,
                    topic=topic or settings.events_topic,
                    key=key_of(line),
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
