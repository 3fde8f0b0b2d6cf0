"""One process at a time for each instance of a consumer group: `serve` holds a session lock keyed by its group and
its group instance id for as long as it runs.

Two processes under one instance id (two `serve` on one host without MEDLEDGER_INSTANCE, say) would make the broker
fence each other's membership by turns, every rejoin claiming the partitions in the ledger anew and fencing the
other's batches, until one of them is fenced for good and goes on running while it consumes nothing. So the second
one's start is refused, with the reason. A process that died has lost its session, and with it the lock: its
restart under the same id, which static membership exists for, takes the lock at once.
"""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg

from .connection import Raw

RETRY_EVERY = 0.2  # seconds


class InstanceInUse(RuntimeError):
    """Another process holds the lock of the same group instance on this ledger."""


def instance_lock(group: str, instance: str) -> int:
    """The session lock of a group instance: a stable signed 64-bit key (the same in every process and release)."""
    digest = hashlib.sha256(b"medledger instance\x00" + group.encode() + b"\x00" + instance.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def hold(url: str, group: str, instance: str, within: float = 5.0) -> Raw:
    """A connection of its own to the database at `url` holding the lock of `instance` of `group`, taken within
    `within` seconds (a process that has just died may take a moment to lose its session); `InstanceInUse` when
    another process keeps it. Close the connection to give the lock up."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", instance_lock(group, instance)):
            if loop.time() >= deadline:
                raise InstanceInUse(
                    f"group instance {instance!r} of consumer group {group!r} is served by another process on this "
                    "ledger (it holds the instance's lock in PostgreSQL): give each serve of a group an id of its own, "
                    "with MEDLEDGER_INSTANCE or MEDLEDGER_GROUP_INSTANCE_ID"
                )
            await asyncio.sleep(RETRY_EVERY)
    except BaseException:
        await connection.close()
        raise
    return connection
