"""One process at a time for each instance of a consumer group: `serve` holds a session lock keyed by its group and
its group instance id for as long as it runs.

Two processes under one instance id (two `serve` on one host without MEDLEDGER_INSTANCE, say) would make the broker
fence each other's membership by turns, every rejoin claiming the partitions in the ledger anew and fencing the
other's batches, until one of them is fenced for good and goes on running while it consumes nothing. So the second
one's start is refused, with the reason. A process that died has lost its session, and with it the lock: its
restart under the same id, which static membership exists for, takes the lock at once.

The lock lives as long as its connection: a database that restarts, or a connection it terminates, takes it away
while `serve` goes on. `Held.keep` looks at its connection every few seconds and takes the lock again on a new one,
waiting while the database is away; if another process has taken it meanwhile, `keep` raises `InstanceInUse` and
`serve` stops, as the later of the two would have been refused at its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid

import asyncpg

from .connection import Raw
from .server import dsn

log = logging.getLogger("medledger.instances")

RETRY_EVERY = 0.2  # seconds
KEEP_EVERY = 5.0  # seconds between two looks at the lock's connection
AWAY = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError)


class InstanceInUse(RuntimeError):
    """Another process holds the lock of the same group instance on this ledger."""


def instance_lock(group: str, instance: str) -> int:
    """The session lock of a group instance: a stable signed 64-bit key (the same in every process and release)."""
    digest = hashlib.sha256(b"medledger instance\x00" + group.encode() + b"\x00" + instance.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def hold(url: str, group: str, instance: str, within: float = 5.0, name: str | None = None) -> Raw:
    """A connection of its own to the database at `url` holding the lock of `instance` of `group`, taken within
    `within` seconds (a process that has just died may take a moment to lose its session); `InstanceInUse` when
    another process keeps it. Close the connection to give the lock up. `name`: the connection's application_name,
    which tells this process's own sessions from another's (`Held`)."""
    settings = {"application_name": name} if name is not None else None
    connection = await asyncpg.connect(dsn(url), server_settings=settings)
    key = instance_lock(group, instance)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
            if name is not None and await connection.fetchval(ENDED_OWN, key, name):
                pass  # a session of this process the server kept after its connection was lost: ended, then taken
            elif loop.time() >= deadline:
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


class Held:
    """The lock of a group instance and the connection it lives on, kept for as long as `keep` runs."""

    def __init__(self, url: str, group: str, instance: str, connection: Raw, name: str):
        self.url, self.group, self.instance, self.connection, self.name = url, group, instance, connection, name
        self.retaken = 0  # times the lock was taken again on a new connection

    @classmethod
    async def take(cls, url: str, group: str, instance: str, within: float = 5.0) -> Held:
        name = f"medledger instance {uuid.uuid4()}"  # this process's, on every connection holding the lock
        return cls(url, group, instance, await hold(url, group, instance, within, name), name)

    async def keep(self, every: float = KEEP_EVERY, within: float = 5.0) -> None:
        """Until cancelled: every `every` seconds, the connection is asked whether it still holds the lock; when it
        does not (the connection is gone, or the database restarted), the lock is taken again on a new connection,
        waiting while the database is away. `InstanceInUse` when another process took it meanwhile."""
        key = instance_lock(self.group, self.instance)
        while True:
            await asyncio.sleep(every)
            try:
                if await self.connection.fetchval(HOLDS, key):
                    continue
            except AWAY:
                pass
            await self._close()
            while True:
                try:
                    self.connection = await hold(self.url, self.group, self.instance, within, self.name)
                    break
                except AWAY as error:
                    log.warning("the database is away; the instance lock is taken again when it is back: %s", error)
                    await asyncio.sleep(every)
            self.retaken += 1
            log.warning("the instance lock, lost with its connection, is taken again", extra={"times": self.retaken})

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), 5)

    async def release(self) -> None:
        await self._close()


# A session that holds the lock and carries this process's name (a connection the server has not yet seen end) is
# ended: the lock is this process's to take again.
ENDED_OWN = """SELECT pg_terminate_backend(pid) FROM pg_locks JOIN pg_stat_activity USING (pid)
    WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1
    AND application_name = $2 AND pid <> pg_backend_pid()"""

# Whether this session holds the advisory lock: a bigint key is kept as its high and low 32 bits, objsubid 1.
HOLDS = """SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
    AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1)"""
