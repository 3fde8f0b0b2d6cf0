"""The outbox relay: publishes what committed batches wrote to the outbox, in commit order, then records how far
it got. One relay publishes at a time (a session lock in PostgreSQL); another instance's relay waits to take over.

Delivery is at least once: a crash between the broker's acknowledgement and the recorded position publishes those
records again. Consumers deduplicate by `settlement_id` / `movement_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream.kafka import KafkaBroker

from ledger.db.event_store import driver
from ledger.db.outbox import REJECTIONS, SETTLEMENTS, pending, record_relayed, relayed
from ledger.service import LedgerService

from .metrics import Metrics

RELAY_LOCK = 0x6D656D72  # "memr"
log = logging.getLogger("medledger.relay")


class Relay:
    def __init__(
        self,
        service: LedgerService,
        broker: KafkaBroker,
        topics: dict[str, str],
        metrics: Metrics | None = None,
        name: str = "medledger",
        chunk: int = 2_000,
        idle_seconds: float = 0.5,
    ):
        missing = {SETTLEMENTS, REJECTIONS} - set(topics)
        if missing:
            raise ValueError(f"no topic for the streams {sorted(missing)}")
        self.service, self.broker, self.topics, self.metrics = service, broker, topics, metrics
        self.name, self.chunk, self.idle_seconds = name, chunk, idle_seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

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
            try:
                while not self._stop.is_set():
                    if not await self.publish_pending(raw):
                        await self._pause(self.idle_seconds)
            finally:
                with contextlib.suppress(Exception):
                    await raw.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK)

    async def publish_pending(self, raw) -> int:
        """One chunk: sent, acknowledged by the broker, then recorded as relayed."""
        after = await relayed(raw, self.name)
        rows = await pending(raw, after, self.chunk)
        if not rows:
            if self.metrics:
                self.metrics.outbox_behind.set(0)
            return 0
        sent = []
        for row in rows:
            sent.append(
                await self.broker.publish(
                    row.value.encode(),
                    topic=self.topics[row.stream],
                    key=row.key.encode() if row.key is not None else None,
                    headers={"content-type": "application/json"},
                    no_confirm=True,
                )
            )
        await asyncio.gather(*sent)
        await record_relayed(raw, self.name, rows[-1].position)
        if self.metrics:
            for row in rows:
                self.metrics.relayed.labels(row.stream).inc()
            behind = await raw.fetchval("SELECT count(*) FROM outbox WHERE position > $1", rows[-1].position)
            self.metrics.outbox_behind.set(behind)
        return len(rows)

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
