"""The durable ledger: ingest events into PostgreSQL, settle them, keep the projections, sweep parked events.

Each batch is one transaction under the append lock: the events, their settlements, movements, incentives and
rejections, the projections they move and the parking changes commit together, or none of them does. What a
batch published is handed to the caller only after it committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from policies.parameters import parse_parameters
from policies.registry import PolicyRegistry

from .batch import BatchRows
from .chain import text_digest
from .db.connect import service_engine
from .db.event_store import PostgresEventStore, driver, transaction
from .db.migrate import prepare
from .db.outbox import write_outbox
from .db.projection_store import Names, write_ledger, write_projections
from .db.server import Database
from .db.tracking import Claim, TopicPartition, advance, claim, stored
from .intake import Incoming
from .pipeline import Parking, Pipeline, Sequencer

DEFAULT_PARK_TTL = timedelta(days=30)
LIVE = Names()


@dataclass(frozen=True)
class Tracking:
    """Where a batch read from the broker: committed with it, only while the consumer's claims still hold."""

    consumer: str
    claims: dict[TopicPartition, Claim]
    spans: dict[TopicPartition, tuple[int, int]]  # first offset in the batch, offset after its last


@dataclass
class IngestStats:
    read: int = 0
    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    parked: int = 0
    settlements: int = 0
    movements: int = 0
    expired: int = 0

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
    def __init__(
        self,
        db: Database,
        parameters_text: str = "",
        parameters_source: str | None = None,
        batch_size: int = 2_000,
        park_ttl: timedelta = DEFAULT_PARK_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        prepare_schema: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.db = db
        self.parameters_text = parameters_text
        self.digest = text_digest(parameters_text)
        self.registry = PolicyRegistry(parse_parameters(parameters_text, parameters_source))
        self.batch_size = batch_size
        self.park_ttl = park_ttl
        self.clock = clock
        self.engine: AsyncEngine | None = None
        self.prepare_schema = prepare_schema

    async def __aenter__(self) -> LedgerService:
        if self.prepare_schema:
            prepare(self.db)
        self.engine = service_engine(self.db, pool_size=4)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.engine is not None:
            await self.engine.dispose()

    async def ingest(
        self, items: Iterable[Incoming], on_published: Callable[[list[dict]], None] | None = None
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

    async def claim(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        """Take partitions over for `consumer` (see `ledger.db.tracking`)."""
        async with self.engine.connect() as connection:
            return await claim(await driver(connection), consumer, partitions)

    async def stored_offsets(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        async with self.engine.connect() as connection:
            return await stored(await driver(connection), consumer, partitions)

    async def ingest_batch(
        self,
        items: list[Incoming],
        tracking: Tracking | None = None,
        on_published: Callable[[list[dict]], None] | None = None,
    ) -> IngestStats:
        """One batch as one transaction, with the consumed offsets when it came from the broker (`StaleClaim` if
        a partition was taken over meanwhile: then nothing of the batch is written)."""
        stats = IngestStats()
        await self._batch(items, stats, on_published, tracking=tracking)
        return stats

    async def _batch(
        self,
        items: list[Incoming],
        stats: IngestStats,
        on_published,
        expired_before: datetime | None = None,
        tracking: Tracking | None = None,
    ) -> int:
        """One transaction under the append lock. With `expired_before`, the batch is the parked events that
        waited longer than that, selected under the lock so no other writer can release or refuse them too."""
        async with self.engine.connect() as connection, transaction(connection):
            store = PostgresEventStore(connection)
            await store.lock()
            raw = await driver(connection)
            if tracking is not None:
                await advance(raw, tracking.consumer, tracking.claims, tracking.spans)
            seq, prev = await store.head()
            sequencer = Sequencer(seq, prev, self.digest)
            arrival = await raw.fetchval("SELECT coalesce(max(arrival), 0) FROM parked_events")
            parking = Parking(raw, self.clock(), arrival)
            if expired_before is not None:
                items = await parking.expired(expired_before, self.batch_size, self.park_ttl)
                stats.expired += len(items)
                fresh = items
            else:
                fresh = await self._unseen(store, raw, items, stats)
            stats.read += len(items)

            async def write(batch_rows: BatchRows, registry) -> None:
                if batch_rows.events:
                    await store.record_parameters(self.digest, self.parameters_text)
                await store.write(batch_rows.events)
                await write_ledger(raw, batch_rows)
                await write_projections(raw, LIVE, batch_rows, registry, self.digest)
                await write_outbox(raw, batch_rows.outbox)

            pipeline = Pipeline(raw, LIVE, self.registry, sequencer, write, parking, keep_loaded=True)
            await pipeline.run(fresh)
            stats.appended += sequencer.seq - seq
        stats.add(pipeline.published)
        if on_published is not None:
            on_published(pipeline.published)
        return len(items)

    async def _unseen(
        self, store: PostgresEventStore, raw, items: list[Incoming], stats: IngestStats
    ) -> list[Incoming]:
        """Drop repeats: an event already in the ledger or in the parking area, unreadable input already refused,
        or either earlier in this batch. A repeat is acknowledged, never applied or recorded twice."""
        ids = [item.event.event_id for item in items if item.event is not None]
        seen = await store.known(ids)
        if ids:
            seen |= {
                row[0]
                for row in await raw.fetch("SELECT event_id FROM parked_events WHERE event_id = ANY($1::text[])", ids)
            }
        digests = [text_digest(item.raw) for item in items if item.error is not None]
        if digests:
            seen |= {
                row[0]
                for row in await raw.fetch(
                    "SELECT payload_digest FROM ledger_rejections "
                    "WHERE seq IS NULL AND payload_digest = ANY($1::text[])",
                    digests,
                )
            }
        fresh = []
        for item in items:
            key = item.event.event_id if item.event is not None else text_digest(item.raw)
            if key in seen:
                stats.duplicates += 1
                continue
            seen.add(key)
            fresh.append(item)
        return fresh

    async def sweep(
        self, now: datetime | None = None, stats: IngestStats | None = None, on_published=None
    ) -> IngestStats:
        """Refuse parked events older than the parking time: appended to the ledger and rejected with the
        reason, so nothing is lost."""
        stats = stats or IngestStats()
        cutoff = (now or self.clock()) - self.park_ttl
        while await self._batch([], stats, on_published, expired_before=cutoff):
            pass
        return stats
