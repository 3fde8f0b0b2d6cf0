"""The lock one `serve` holds for its group instance (ledger/db/instances.py), when its connection goes away."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ledger.db.instances import HOLDS, Held, InstanceInUse, instance_lock
from tests.ledger.helpers import plain

GROUP, INSTANCE = "medledger", "host-a"


async def _holder(owner: asyncpg.Connection) -> int | None:
    """The backend holding the instance's lock, as pg_locks shows it."""
    key = instance_lock(GROUP, INSTANCE)
    return await owner.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND ((classid::bigint << 32) | objid::bigint) = $1",
        key,
    )


async def _until(check, seconds: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


def test_the_lock_is_seen_held_by_its_own_connection_alone(database):
    async def main() -> None:
        held = await Held.take(database.app_url, GROUP, INSTANCE)
        other = await asyncpg.connect(plain(database.app_url))
        try:
            assert await held.connection.fetchval(HOLDS, instance_lock(GROUP, INSTANCE))
            assert not await other.fetchval(HOLDS, instance_lock(GROUP, INSTANCE))
            assert not await held.connection.fetchval(HOLDS, instance_lock(GROUP, "host-b"))
        finally:
            await other.close()
            await held.release()

    asyncio.run(main())


def test_a_lock_lost_with_its_connection_is_taken_again_on_a_new_one(database):
    async def main() -> None:
        owner = await asyncpg.connect(plain(database.owner_url))
        held = await Held.take(database.app_url, GROUP, INSTANCE)
        keeping = asyncio.create_task(held.keep(every=0.05, within=0.5))
        try:
            first = await _holder(owner)
            assert first is not None
            await owner.execute("SELECT pg_terminate_backend($1)", first)  # as a restart of the database would
            assert await _until(lambda: _holder_other_than(owner, first)), "the lock was not taken again"
            assert held.retaken == 1 and not keeping.done()
        finally:
            keeping.cancel()
            await asyncio.gather(keeping, return_exceptions=True)
            await held.release()
            await owner.close()

    asyncio.run(main())


async def _holder_other_than(owner: asyncpg.Connection, pid: int) -> bool:
    now = await _holder(owner)
    return now is not None and now != pid


def test_a_lock_another_process_took_meanwhile_stops_the_keeper_with_the_reason(database):
    async def main() -> None:
        owner = await asyncpg.connect(plain(database.owner_url))
        held = await Held.take(database.app_url, GROUP, INSTANCE)
        keeping = asyncio.create_task(held.keep(every=0.3, within=0.5))
        second = None
        try:
            await owner.execute("SELECT pg_terminate_backend($1)", await _holder(owner))
            await asyncio.sleep(0.05)  # its session is gone before the keeper looks
            second = await Held.take(database.app_url, GROUP, INSTANCE, within=2)  # a second serve under the id
            with pytest.raises(InstanceInUse, match="served by another process"):
                await asyncio.wait_for(keeping, 10)
            assert await _holder(owner) == await second.connection.fetchval("SELECT pg_backend_pid()")
        finally:
            keeping.cancel()
            await asyncio.gather(keeping, return_exceptions=True)
            if second is not None:
                await second.release()
            await held.release()
            await owner.close()

    asyncio.run(main())


def test_a_session_of_its_own_the_server_kept_is_ended_and_the_lock_taken_again(database):
    """A connection lost on the client's side while the server still keeps its session (a network that broke, say)
    holds the lock under this process's name: it is ended, not mistaken for another process."""

    async def main() -> None:
        owner = await asyncpg.connect(plain(database.owner_url))
        held = await Held.take(database.app_url, GROUP, INSTANCE)
        keeping = asyncio.create_task(held.keep(every=0.3, within=2))
        kept = None
        try:
            await owner.execute("SELECT pg_terminate_backend($1)", await _holder(owner))
            await asyncio.sleep(0.05)
            kept = await asyncpg.connect(plain(database.app_url), server_settings={"application_name": held.name})
            assert await kept.fetchval("SELECT pg_try_advisory_lock($1)", instance_lock(GROUP, INSTANCE))
            zombie = await kept.fetchval("SELECT pg_backend_pid()")
            assert await _until(lambda: _holder_other_than(owner, zombie)), "the lock was not taken again"
            assert held.retaken == 1 and not keeping.done()
            assert await owner.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", zombie) == 0
        finally:
            keeping.cancel()
            await asyncio.gather(keeping, return_exceptions=True)
            if kept is not None and not kept.is_closed():
                await kept.close(timeout=1)
            await held.release()
            await owner.close()

    asyncio.run(main())
