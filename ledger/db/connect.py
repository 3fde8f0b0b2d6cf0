"""Connections of the service role: an asyncpg pool.

Every statement of the service goes to asyncpg directly, so a process that reads and writes the ledger needs no
other database library: SQLAlchemy, with its PostgreSQL dialect, is the schema's definition for Alembic and is not
imported by a running ingest, serve or replay (about 20 MB a process, `tests/test_lean_start.py`).

The pool lends a connection outside any transaction: asyncpg rolls back what a borrower left open when it is given
back, and closes one it cannot (`event_store.begin` and `reading` discard a connection an error or a cancellation
left in an unknown state, and the pool opens another when next asked). Nothing else is reset between borrowers:
asyncpg's default reset is a round trip a borrowing (`RESET ALL`, `UNLISTEN *`, the session's advisory locks), and
no borrower changes a setting of its session or keeps a session lock past its own `finally`.

A borrower waits for a connection at most `ACQUIRE_WAIT` seconds, or the wait it gives (`lent`; the gateway's
questions, its own): when every connection is lent and none comes back (a borrower stuck on a server that stopped
answering), it fails with `PoolExhausted`, a `TimeoutError`, which every caller treats as the database being away
for now (a batch is read again, a gateway message is answered `unavailable`), rather than waiting for good."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from asyncpg import Pool

from .server import Database, dsn

__all__ = ["ACQUIRE_WAIT", "Pool", "PoolExhausted", "close_pool", "lent", "open_pool", "service_pool"]

KEPT = 1 << 62  # statements a connection runs before the pool replaces it: never
CLOSE_WAIT = 10.0  # seconds a closing pool waits for connections still lent before it terminates them
ACQUIRE_WAIT = 30.0  # seconds a borrower waits for a connection of the pool (`lent`)


class PoolExhausted(TimeoutError):
    """No connection of a pool came free, or could be opened, within the borrower's wait (`lent`)."""


@asynccontextmanager
async def lent(pool: Pool, wait: float | None = None) -> AsyncIterator[Any]:
    """A connection of `pool`, given back on exit; waited for at most `wait` seconds (`ACQUIRE_WAIT` unless
    given)."""
    wait = ACQUIRE_WAIT if wait is None else wait
    try:
        connection = await pool.acquire(timeout=wait)
    except TimeoutError as error:
        raise PoolExhausted(
            f"no database connection within {wait:g} s: all {pool.get_max_size()} of the pool are lent and none came "
            "back, or the server did not answer"
        ) from error
    try:
        yield connection
    finally:
        await pool.release(connection)


async def service_pool(db: Database, size: int = 1) -> Pool:
    """Up to `size` connections of the service role."""
    return await open_pool(db.app_url, size)


async def open_pool(url: str, size: int) -> Pool:
    """Up to `size` connections to `url`, opened when first asked for (none at once: a service starts whether or not
    the server is up yet). jsonb and json arrive decoded by orjson and are sent as JSON text."""
    pool = await asyncpg.create_pool(
        dsn(url),
        min_size=0,
        max_size=size,
        init=_codecs,
        reset=_nothing_more,
        # Kept, however long idle and however many statements they ran: a connection holds its prepared statements
        # and generic plans, and a batch's staging tables (`db.writes`), which a new one makes again.
        max_inactive_connection_lifetime=0,
        max_queries=KEPT,
    )
    assert pool is not None  # create_pool awaited returns the pool
    return pool


async def close_pool(pool: Pool) -> None:
    """Closes every connection; one still lent after `CLOSE_WAIT` seconds is terminated."""
    try:
        await asyncio.wait_for(pool.close(), CLOSE_WAIT)
    except TimeoutError:
        pool.terminate()


async def _codecs(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=_jsonb, decoder=_from_jsonb, schema="pg_catalog", format="binary")
    await connection.set_type_codec(
        "json", encoder=str.encode, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )


def _jsonb(text: str) -> bytes:
    return b"\x01" + text.encode()  # jsonb's binary form: its version, then the text


def _from_jsonb(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])


async def _nothing_more(_connection: asyncpg.Connection) -> None:
    """The pool's reset after its own rollback of an open transaction (see the module's text)."""
