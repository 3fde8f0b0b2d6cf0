"""Connections of the service role."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .server import Database


def service_engine(db: Database, pool_size: int = 1) -> AsyncEngine:
    """READ COMMITTED whatever the server's default: each batch reads what committed before it took the append
    lock. jsonb arrives decoded by orjson."""
    engine = create_async_engine(
        db.app_url,
        pool_size=pool_size,
        max_overflow=0,
        json_deserializer=orjson.loads,
        isolation_level="READ COMMITTED",
    )
    event.listen(engine.sync_engine, "checkout", refuse_unusable)
    return engine


def refuse_unusable(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Statements go to asyncpg directly (`event_store.begin`), so SQLAlchemy never sees a connection die or a
    transaction left open on it. Both are plain to see without a round trip: such a connection is replaced (the
    pool closes it, which also ends its transaction and its locks, and checks out another)."""
    raw = dbapi_connection.driver_connection
    if raw.is_closed():
        raise exc.DisconnectionError("the connection was closed")
    if raw.is_in_transaction():
        raise exc.DisconnectionError("the connection was left inside a transaction")
