"""The PostgreSQL event store. It works inside the caller's transaction, so the events, the settlements they
cause and the projections they move commit together or not at all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..chain import GENESIS, ChainBreak, verify_links
from ..store import DuplicateEvent, EventStore, NewEvent, StoredEvent, UnrecordedParameters, chained
from .tables import ledger_events, parameter_sets

# One writer at a time appends: the lock is held to commit, so sequence order is commit order and no gap can
# open (a rolled-back append releases its numbers with the lock).
APPEND_LOCK = 0x6D656D6C  # "meml"

COLUMNS = (
    "seq",
    "event_id",
    "event_type",
    "region",
    "member_id",
    "occurred_at",
    "payload",
    "params_digest",
    "prev_hash",
    "hash",
    "source",
)


async def driver(connection: AsyncConnection):
    raw = await connection.get_raw_connection()
    return raw.driver_connection


@asynccontextmanager
async def transaction(connection: AsyncConnection):
    """A transaction that has really begun, so statements sent on the raw driver connection belong to it:
    SQLAlchemy sends BEGIN lazily, with its own first statement."""
    async with connection.begin():
        await connection.execute(select(1))
        yield


class PostgresEventStore(EventStore):
    def __init__(self, connection: AsyncConnection):
        self.connection = connection
        self._locked = False

    async def lock(self) -> None:
        if not self._locked:
            await self.connection.execute(select(func.pg_advisory_xact_lock(APPEND_LOCK)))
            self._locked = True

    async def record_parameters(self, digest: str, content: str) -> None:
        await self.connection.execute(
            insert(parameter_sets).values(digest=digest, content=content).on_conflict_do_nothing()
        )

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        await self.lock()
        ids = [event.event_id for event in events]
        clashes = await self.known(ids) | {i for i in ids if ids.count(i) > 1}
        if clashes:
            raise DuplicateEvent(clashes)
        digests = {event.params_digest for event in events}
        recorded = await self.connection.execute(
            select(parameter_sets.c.digest).where(parameter_sets.c.digest.in_(digests))
        )
        unknown = digests - {row[0] for row in recorded}
        if unknown:
            raise UnrecordedParameters(unknown)
        stored = chained(events, *await self.head())
        await self.write(stored)
        return stored

    async def write(self, stored: Sequence[StoredEvent]) -> None:
        """Copy already chained events in (the pipeline chains them as it settles)."""
        if not stored:
            return
        connection = await driver(self.connection)
        await connection.copy_records_to_table(
            "ledger_events",
            records=[tuple(getattr(event, column) for column in COLUMNS) for event in stored],
            columns=COLUMNS,
        )

    async def known(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(set(event_ids))
        if not ids:
            return set()
        # one array parameter: an IN list of a batch's thousands of ids costs more to build and plan than to run
        raw = await driver(self.connection)
        rows = await raw.fetch("SELECT event_id FROM ledger_events WHERE event_id = ANY($1::text[])", ids)
        return {row[0] for row in rows}

    async def head(self) -> tuple[int, bytes]:
        row = (
            await self.connection.execute(
                select(ledger_events.c.seq, ledger_events.c.hash).order_by(ledger_events.c.seq.desc()).limit(1)
            )
        ).first()
        return (row[0], bytes(row[1])) if row else (0, GENESIS)

    async def read(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        query = select(*[ledger_events.c[name] for name in COLUMNS]).where(ledger_events.c.seq > after)
        query = query.order_by(ledger_events.c.seq)
        if limit is not None:
            query = query.limit(limit)
        rows = await self.connection.execute(query)
        return [_stored(row) for row in rows]

    async def verify(self, chunk: int = 20_000) -> list[ChainBreak]:
        breaks: list[ChainBreak] = []
        after, prev_hash, prev_seq = 0, GENESIS, 0
        while True:
            rows = (
                await self.connection.execute(
                    select(
                        ledger_events.c.seq, ledger_events.c.payload, ledger_events.c.prev_hash, ledger_events.c.hash
                    )
                    .where(ledger_events.c.seq > after)
                    .order_by(ledger_events.c.seq)
                    .limit(chunk)
                )
            ).all()
            if not rows:
                return breaks
            breaks.extend(verify_links(rows, prev_hash, prev_seq))
            after = prev_seq = rows[-1][0]
            prev_hash = bytes(rows[-1][3])


def _stored(row) -> StoredEvent:
    values = dict(zip(COLUMNS, row))
    values["prev_hash"], values["hash"] = bytes(values["prev_hash"]), bytes(values["hash"])
    return StoredEvent(**values)
