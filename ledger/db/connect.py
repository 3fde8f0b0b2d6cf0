"""Connections of the service role."""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .server import Database


def service_engine(db: Database, pool_size: int = 1) -> AsyncEngine:
    """READ COMMITTED whatever the server's default: each batch reads what committed before it took the append
    lock. jsonb arrives decoded by orjson."""
    return create_async_engine(
        db.app_url,
        pool_size=pool_size,
        max_overflow=0,
        json_deserializer=orjson.loads,
        isolation_level="READ COMMITTED",
    )
