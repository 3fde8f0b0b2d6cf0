"""The PostgreSQL event store. It works inside the caller's transaction, so the events, the settlements they
cause and the projections they move commit together or not at all.

It speaks to asyncpg directly: a batch sends a few dozen statements, and each one sent through SQLAlchemy's
async adapter cost about three times the CPU of the same statement sent on the driver connection. The pool is
asyncpg's too (`db.connect`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ..store import StoredEvent
from .connect import Pool, lent
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


@asynccontextmanager
async def transaction(raw: Raw) -> AsyncIterator[None]:
    """A READ COMMITTED transaction on `raw` that commits on exit (rolls back on an error)."""
    async with raw.transaction(isolation="read_committed"):
        yield


@asynccontextmanager
async def begin(pool: Pool, first: str = "") -> AsyncIterator[Raw]:
    """A pooled connection, in a READ COMMITTED transaction that commits on exit (rolls back on an error). `first`
    (statements without parameters: an advisory lock, a NOTIFY) is sent in the same round trip as BEGIN."""
    async with lent(pool) as raw:
        try:
            await raw.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; {first}")
            yield raw
        except BaseException:
            await _abandon(raw)
            raise
        try:
            await raw.execute("COMMIT")
        except BaseException:
            _discard(raw)  # whether it committed is the server's to say; start afresh
            raise


@asynccontextmanager
async def reading(pool: Pool, wait: float | None = None) -> AsyncIterator[Raw]:
    """A pooled connection, for statements in no transaction, waited for at most `wait` seconds (`lent`). One left
    by an error or a cancellation, possibly in the middle of a statement, is discarded rather than pooled."""
    async with lent(pool, wait) as raw:
        try:
            yield raw
        except BaseException:
            _discard(raw)
            raise


async def _abandon(raw: Raw) -> None:
    """Roll back. A connection that cannot (closed, the server gone, interrupted again) is discarded: the pool must
    never hand out a dead connection, or one still inside a transaction and holding its locks."""
    try:
        if not raw.is_closed():
            await raw.execute("ROLLBACK")
            return
    except BaseException:
        pass  # the error being raised is the one that matters
    _discard(raw)


def _discard(raw: Raw) -> None:
    """Closed at once; the pool opens a new connection in its place when next asked."""
    with contextlib.suppress(Exception):
        raw.terminate()


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
