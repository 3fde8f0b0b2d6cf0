"""The durable ledger: ingest events into PostgreSQL, settle them, keep the projections, sweep parked events.

Each batch is one transaction under the append lock: the events, their settlements, movements, incentives and
rejections, the projections they move and the parking changes commit together, or none of them does. What a
batch published is handed to the caller only after it committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from policies.parameters import parse_parameters
from policies.registry import PolicyRegistry

from .batch import BatchRows
from .db.event_store import PostgresEventStore, driver, transaction
from .db.migrate import upgrade
from .db.projection_store import Names, write_ledger, write_projections
from .db.server import Database
from .intake import Incoming
from .pipeline import Parking, Pipeline, Sequencer

DEFAULT_PARK_TTL = timedelta(days=30)
LIVE = Names()


def parameters_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class IngestStats:
    read: int = 0
    appended: int = 0
    duplicates: int = 0
    invalid: int = 0
    rejected: int = 0
    parked: int = 0
    settlements: int = 0
    movements: int = 0
    expired: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, published: list[dict]) -> None:
        for record in published:
            if "settlement_id" in record:
                self.settlements += 1
            elif "movement_id" in record:
                self.movements += 1
            elif "rejected" in record:
                self.rejected += 1
            elif "parked" in record:
                self.parked += 1


class LedgerService:
    def __init__(self, db: Database, parameters_text: str = "", parameters_source: str | None = None,
                 batch_size: int = 2_000, park_ttl: timedelta = DEFAULT_PARK_TTL,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.db = db
        self.parameters_text = parameters_text
        self.digest = parameters_digest(parameters_text)
        self.registry = PolicyRegistry(parse_parameters(parameters_text, parameters_source))
        self.batch_size = batch_size
        self.park_ttl = park_ttl
        self.clock = clock
        self.engine: AsyncEngine | None = None

    async def __aenter__(self) -> LedgerService:
        upgrade(self.db.owner_url)
        self.engine = create_async_engine(self.db.app_url, pool_size=4, max_overflow=4, json_deserializer=orjson.loads)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.engine is not None:
            await self.engine.dispose()

    async def ingest(self, items: Iterable[Incoming], on_published: Callable[[list[dict]], None] | None = None
                     ) -> IngestStats:
        stats = IngestStats()
        await self.sweep(stats=stats, on_published=on_published)
        batch: list[Incoming] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.batch_size:
                await self._batch(batch, stats, on_published)
                batch = []
        if batch:
            await self._batch(batch, stats, on_published)
        return stats

    async def _batch(self, items: list[Incoming], stats: IngestStats, on_published, expired: bool = False) -> None:
        stats.read += len(items)
        async with self.engine.connect() as connection, transaction(connection):
            store = PostgresEventStore(connection)
            await store.lock()
            await store.record_parameters(self.digest, self.parameters_text)
            raw = await driver(connection)
            rows = BatchRows()
            valid: list[Incoming] = []
            for item in items:
                if item.error is not None:
                    error = item.error
                    rows.reject(None, error.event_id, item.source, error.reason, error.detail, item.raw,
                                shown_id=error.event_id or item.position)
                    stats.invalid += 1
                else:
                    valid.append(item)
            fresh = valid if expired else await self._unseen(store, raw, valid, stats)
            if rows.rejections:
                await write_ledger(raw, rows)
            seq, prev = await store.head()
            sequencer = Sequencer(seq, prev, self.digest)
            arrival = await raw.fetchval("SELECT coalesce(max(arrival), 0) FROM parked_events")
            parking = Parking(raw, self.clock(), arrival)

            async def write(batch_rows: BatchRows, registry) -> None:
                await store.write(batch_rows.events)
                await write_ledger(raw, batch_rows)
                await write_projections(raw, LIVE, batch_rows, registry)

            pipeline = Pipeline(raw, LIVE, lambda item: self.registry, sequencer, write, parking)
            await pipeline.run(fresh)
            if expired:
                await raw.execute("DELETE FROM parked_events WHERE event_id = ANY($1::text[])",
                                  [item.event.event_id for item in fresh])
            stats.appended += sequencer.seq - seq
        published = rows.published + pipeline.published
        stats.add(published)
        if on_published is not None:
            on_published(published)

    async def _unseen(self, store: PostgresEventStore, raw, items: list[Incoming], stats: IngestStats
                      ) -> list[Incoming]:
        """Drop repeats: already in the ledger, waiting in the parking area, or earlier in this batch."""
        ids = [item.event.event_id for item in items]
        seen = await store.known(ids)
        if ids:
            seen |= {row[0] for row in await raw.fetch(
                "SELECT event_id FROM parked_events WHERE event_id = ANY($1::text[])", ids)}
        fresh = []
        for item in items:
            if item.event.event_id in seen:
                stats.duplicates += 1
                continue
            seen.add(item.event.event_id)
            fresh.append(item)
        return fresh

    async def sweep(self, now: datetime | None = None, stats: IngestStats | None = None,
                    on_published=None) -> IngestStats:
        """Refuse parked events older than the parking time: appended to the ledger and rejected with the
        reason, so nothing is lost."""
        stats = stats or IngestStats()
        cutoff = (now or self.clock()) - self.park_ttl
        async with self.engine.connect() as connection:
            raw = await driver(connection)
            rows = await raw.fetch(
                "SELECT event_id, payload, source, parked_at FROM parked_events WHERE parked_at < $1 "
                "ORDER BY arrival", cutoff,
            )
        if not rows:
            return stats
        from .intake import decode

        items = []
        for event_id, payload, source, parked_at in rows:
            item = decode(payload, source or f"parked:{event_id}", event_id)
            item._payload = payload
            item.expired = (f"parked since {parked_at.isoformat()} and no enrolment arrived within "
                            f"{self.park_ttl}")
            items.append(item)
        stats.expired += len(items)
        for start in range(0, len(items), self.batch_size):
            await self._batch(items[start:start + self.batch_size], stats, on_published, expired=True)
        return stats
