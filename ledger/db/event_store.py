"""The PostgreSQL event store. It works inside the caller's transaction, so the events, the settlements they
cause and the projections they move commit together or not at all.

It speaks to asyncpg directly: a batch sends a few dozen statements, and each one sent through SQLAlchemy's
async adapter costs about three times the CPU of the same statement sent on the driver connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..store import StoredEvent
from .connection import Raw
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


def add_events(writes: Writes, stored: Sequence[StoredEvent]) -> None:
    """The events, and their ids in `ledger_event_ids` (whose primary key refuses an id any region holds)."""
    writes.insert("ledger_events", COLUMNS, stored)  # each a row already, in COLUMNS' order
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
