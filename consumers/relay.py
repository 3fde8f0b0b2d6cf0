"""The outbox relay: publishes what committed batches wrote to the outbox, in commit order, then records how far
it got. One relay publishes at a time (a session lock in PostgreSQL); another instance's relay waits to take over.

Delivery is at least once: a crash between the broker's acknowledgement and the recorded position publishes those
records again. Consumers deduplicate by `settlement_id` / `movement_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter

import orjson

from ledger.db.event_store import driver
from ledger.db.outbox import CHANNEL, REJECTIONS, SETTLEMENTS, pending, record_relayed, relayed
from ledger.service import LedgerService

from .metrics import Metrics
from .producer import BatchProducer

RELAY_LOCK = 0x6D656D72  # "memr"
# Below the broker's default message limit (1 MB) with room for the key and headers.
MAX_VALUE_BYTES = 900_000
log = logging.getLogger("medledger.relay")


def publishable(row) -> str:
    """The record as published. A rejection echoing a huge payload would exceed the broker's message limit and
    stop the relay at that record for good; its payload is replaced by a pointer to the rejection table, which
    keeps the whole payload."""
    # A character is at most 4 bytes in UTF-8: most records need no encoding to know they fit.
    if len(row.value) * 4 <= MAX_VALUE_BYTES or len(row.value.encode()) <= MAX_VALUE_BYTES:
        return row.value
    record = orjson.loads(row.value)
    payload = record.get("payload")
    text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    record["payload"] = {
        "omitted": f"{len(text.encode())} bytes, kept in ledger_rejections",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    value = orjson.dumps(record).decode()
    if len(value.encode()) > MAX_VALUE_BYTES:  # not a payload's fault: keep the identifying fields only
        keep = ("settlement_id", "movement_id", "rejected", "reason", "member_id", "region", "event_id")
        value = orjson.dumps({k: record[k] for k in keep if k in record} | {"truncated": True}).decode()
    return value


class Relay:
    def __init__(
        self,
        service: LedgerService,
        producer: BatchProducer,
        topics: dict[str, str],
        metrics: Metrics | None = None,
        name: str = "medledger",
        chunk: int = 2_000,
        idle_seconds: float = 0.5,
    ):
        missing = {SETTLEMENTS, REJECTIONS} - set(topics)
        if missing:
            raise ValueError(f"no topic for the streams {sorted(missing)}")
        self.service, self.producer, self.topics, self.metrics = service, producer, topics, metrics
        self.name, self.chunk, self.idle_seconds = name, chunk, idle_seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._leading = None  # the connection holding the relay lock, while this relay leads
        self._after: int | None = None  # the position it has published up to, while it leads
        self._busy = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def flush(self, chunks: int = 2) -> None:
        """Publish what has committed, now, up to `chunks` chunks: at shutdown, once the consumer's last batch
        has committed. What remains (or everything, when another instance's relay leads) is the loop's."""
        try:
            async with self._busy:
                for _ in range(chunks):
                    if self._leading is None or not await self.publish_pending(self._leading):
                        break
        except Exception:
            log.exception("publishing after the batch failed; the relay will retry")
        self.wake()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay failed; retrying")
                await self._pause(1.0)

    async def _lead(self) -> None:
        async with self.service.engine.connect() as connection:
            raw = await driver(connection)
            if not await raw.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                await self._pause(2.0)
                return
            # Only the relay holding the lock moves its position, so it is read once per lead, then kept.
            self._after = await relayed(raw, self.name)
            await raw.add_listener(CHANNEL, self._notified)
            self._leading = raw
            try:
                while not self._stop.is_set():
                    # Cleared before looking, not after: a batch committed while the outbox is read wakes the
                    # next round instead of being left for the idle timeout.
                    self._wake.clear()
                    async with self._busy:
                        published = await self.publish_pending(raw)
                    if published < self.chunk:  # all that had committed when it looked; a later commit wakes it
                        await self._wait(self.idle_seconds)
            finally:
                async with self._busy:  # a flush may be using the connection
                    self._leading = None
                    self._after = None
                    with contextlib.suppress(Exception):
                        await raw.remove_listener(CHANNEL, self._notified)
                        await raw.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK)

    def _notified(self, _connection, _pid, _channel, _payload) -> None:
        self._wake.set()

    async def publish_pending(self, raw) -> int:
        """One chunk: sent, acknowledged by the broker, then recorded as relayed."""
        rows = await pending(raw, self._after, self.chunk)
        if not rows:
            if self.metrics:
                self.metrics.outbox_behind.set(0)
            return 0
        await self.producer.publish([(self.topics[row.stream], row.key, publishable(row)) for row in rows])
        await record_relayed(raw, self.name, rows[-1].position)
        self._after = rows[-1].position
        if self.metrics:
            for stream, count in Counter(row.stream for row in rows).items():
                self.metrics.relayed.labels(stream).inc(count)
            # A short chunk was all there was. Otherwise: positions can skip (a rolled-back batch), so this is an
            # upper bound; it costs one index probe.
            newest = await raw.fetchval("SELECT max(position) FROM outbox") if len(rows) == self.chunk else None
            self.metrics.outbox_behind.set(max((newest or 0) - rows[-1].position, 0))
        return len(rows)

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        await self._wait(seconds)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
