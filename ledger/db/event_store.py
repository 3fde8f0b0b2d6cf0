"""The PostgreSQL event store. It works inside the caller's transaction, so the events, the settlements they
cause and the projections they move commit together or not at all.

It speaks to asyncpg directly: a batch sends a few dozen statements, and each one sent through SQLAlchemy's
async adapter costs about three times the CPU of the same statement sent on the driver connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..chain import GENESIS, ChainBreak
from ..store import DuplicateEvent, EventStore, NewEvent, StoredEvent, UnrecordedParameters, chained
from .connection import Raw
from .streams import verify_stream
from .writes import Writes

END_OF_LEDGER = (1 << 63) - 1  # past every seq: a walk to it covers the whole table

# One writer at a time appends: the lock is held to commit, so sequence order is commit order and no gap can
# open (a rolled-back append releases its numbers with the lock).
APPEND_LOCK = 0x6D656D6C  # "meml"
LOCK = f"SELECT pg_advisory_xact_lock({APPEND_LOCK})"

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


async def driver(connection: AsyncConnection) -> Raw:
    raw = await connection.get_raw_connection()
    return raw.driver_connection


@asynccontextmanager
async def transaction(connection: AsyncConnection) -> AsyncIterator[None]:
    """A transaction that has really begun, so statements sent on the raw driver connection belong to it:
    SQLAlchemy sends BEGIN lazily, with its own first statement."""
    async with connection.begin():
        await connection.execute(select(1))
        yield


@asynccontextmanager
async def begin(engine: AsyncEngine, first: str = "") -> AsyncIterator[Raw]:
    """A pooled connection's driver connection, in a READ COMMITTED transaction that commits on exit (rolls back
    on an error). `first` (statements without parameters: an advisory lock, a NOTIFY) is sent in the same round
    trip as BEGIN. SQLAlchemy does not know of the transaction: nothing may be sent through it on that connection
    meanwhile."""
    async with engine.connect() as connection:
        raw = await driver(connection)
        try:
            await raw.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; {first}")
            yield raw
        except BaseException:
            await _abandon(connection, raw)
            raise
        try:
            await raw.execute("COMMIT")
        except BaseException:
            await _discard(connection)  # whether it committed is the server's to say; start afresh
            raise


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[Raw]:
    """A pooled connection's driver connection, for statements in no transaction. One left by an error or a
    cancellation, possibly in the middle of a statement, is discarded rather than pooled."""
    async with engine.connect() as connection:
        raw = await driver(connection)
        try:
            yield raw
        except BaseException:
            await _discard(connection)
            raise


async def _abandon(connection: AsyncConnection, raw: Raw) -> None:
    """Roll back. A connection that cannot (closed, the server gone, interrupted again) is discarded: the pool must
    never hand out a dead connection, or one still inside a transaction and holding its locks."""
    try:
        if not raw.is_closed():
            await raw.execute("ROLLBACK")
            return
    except BaseException:
        pass  # the error being raised is the one that matters
    await _discard(connection)


async def _discard(connection: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.invalidate()


class PostgresEventStore(EventStore):
    """On an asyncpg connection that is in a transaction."""

    def __init__(self, raw: Raw, locked: bool = False):
        """`locked`: the transaction already holds the append lock (`begin(..., first=LOCK)`)."""
        self.raw = raw
        self._locked = locked

    async def lock(self) -> None:
        if not self._locked:
            await self.raw.execute(LOCK)
            self._locked = True

    async def record_parameters(self, digest: str, content: str) -> None:
        writes = Writes()
        add_parameters(writes, digest, content)
        await writes.run(self.raw)

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        await self.lock()
        ids = [event.event_id for event in events]
        clashes = await self.known(ids) | {i for i in ids if ids.count(i) > 1}
        if clashes:
            raise DuplicateEvent(clashes)
        digests = {event.params_digest for event in events}
        recorded = await self.raw.fetch(
            "SELECT digest FROM parameter_sets WHERE digest = ANY($1::text[])", list(digests)
        )
        unknown = digests - {row[0] for row in recorded}
        if unknown:
            raise UnrecordedParameters(unknown)
        stored = chained(events, *await self.head())
        await self.write(stored)
        return stored

    async def write(self, stored: Sequence[StoredEvent]) -> None:
        """Already chained events in (the pipeline chains them as it settles)."""
        writes = Writes.sized(len(stored))
        add_events(writes, stored)
        await writes.run(self.raw)

    async def known(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(set(event_ids))
        if not ids:
            return set()
        # one array parameter: an IN list of a batch's thousands of ids costs more to build and plan than to run
        rows = await self.raw.fetch("SELECT event_id FROM ledger_event_ids WHERE event_id = ANY($1::text[])", ids)
        return {row[0] for row in rows}

    async def head(self) -> tuple[int, bytes]:
        row = await self.raw.fetchrow("SELECT seq, hash FROM ledger_events ORDER BY seq DESC LIMIT 1")
        return (row[0], bytes(row[1])) if row else (0, GENESIS)

    async def read(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        rows = await self.raw.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM ledger_events WHERE seq > $1 ORDER BY seq LIMIT $2", after, limit
        )
        return [_stored(row) for row in rows]

    async def verify(self, chunk: int = 20_000) -> list[ChainBreak]:
        return await verify_stream(self.raw, 0, GENESIS, END_OF_LEDGER, chunk)


def add_events(writes: Writes, stored: Sequence[StoredEvent]) -> None:
    """The events, and their ids in `ledger_event_ids` (whose primary key refuses an id any region holds)."""
    writes.insert("ledger_events", COLUMNS, [tuple(getattr(event, column) for column in COLUMNS) for event in stored])
    writes.insert("ledger_event_ids", ("event_id", "region"), [(event.event_id, event.region) for event in stored])


def add_parameters(writes: Writes, digest: str, content: str) -> None:
    """The parameter set events are settled under (`record_parameters`), beside the events that name it."""
    writes.add(
        "INSERT INTO parameter_sets (digest, content) "
        f"VALUES ({writes.parameter(digest, 'text')}, {writes.parameter(content, 'text')}) "
        "ON CONFLICT (digest) DO NOTHING"
    )


def _stored(row: Sequence) -> StoredEvent:
    values = dict(zip(COLUMNS, row))
    values["prev_hash"], values["hash"] = bytes(values["prev_hash"]), bytes(values["hash"])
    return StoredEvent(**values)
