"""`begin`: the hot path's transactions on the driver connection. Whatever happens inside, the connection goes back
to the pool outside any transaction and without the locks it took."""

import asyncio

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.db.connect import refuse_unusable, service_engine
from ledger.db.event_store import APPEND_LOCK, LOCK, begin, driver

HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"


async def clean(engine) -> tuple[bool, int, int]:
    """The pooled connection's state: (in a transaction, advisory locks held, 1 if it answers)."""
    async with engine.connect() as connection:
        raw = await driver(connection)
        return raw.is_in_transaction(), await raw.fetchval(HELD), await raw.fetchval("SELECT 1")


def run(database, scenario):
    async def main():
        engine = create_async_engine(database.owner_url, pool_size=1, max_overflow=0)
        event.listen(engine.sync_engine, "checkout", refuse_unusable)  # as `service_engine` does
        try:
            return await scenario(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_it_commits_on_exit_holding_the_lock_sent_with_begin(database):
    async def scenario(engine):
        async with engine.connect() as connection:
            await (await driver(connection)).execute("CREATE TABLE begin_probe (n int)")
        async with begin(engine, first=LOCK) as raw:
            assert raw.is_in_transaction()
            assert await raw.fetchval(HELD) == 1
            assert await raw.fetchval("SELECT objid FROM pg_locks WHERE locktype = 'advisory'") == APPEND_LOCK
            await raw.execute("INSERT INTO begin_probe VALUES (1)")
        assert await clean(engine) == (False, 0, 1)
        async with engine.connect() as connection:
            return await (await driver(connection)).fetchval("SELECT count(*) FROM begin_probe")

    assert run(database, scenario) == 1


def test_an_error_inside_rolls_everything_back(database):
    async def scenario(engine):
        async with engine.connect() as connection:
            await (await driver(connection)).execute("CREATE TABLE begin_probe (n int)")
        with pytest.raises(RuntimeError, match="in Python"):
            async with begin(engine, first=LOCK) as raw:
                await raw.execute("INSERT INTO begin_probe VALUES (1)")
                raise RuntimeError("an error in Python")
        with pytest.raises(Exception, match="division by zero"):
            async with begin(engine) as raw:
                await raw.execute("INSERT INTO begin_probe VALUES (2)")
                await raw.execute("SELECT 1 / 0")
        state = await clean(engine)
        async with engine.connect() as connection:
            return state, await (await driver(connection)).fetchval("SELECT count(*) FROM begin_probe")

    assert run(database, scenario) == ((False, 0, 1), 0)


def test_a_transaction_cancelled_mid_statement_leaves_no_connection_behind_in_it(database):
    async def scenario(engine):
        started = asyncio.Event()

        async def batch():
            async with begin(engine, first=LOCK) as raw:
                started.set()
                await raw.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(batch())
        await started.wait()
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.wait_for(clean(engine), 10)

    assert run(database, scenario) == (False, 0, 1)


def test_a_connection_whose_server_side_is_gone_is_replaced(database):
    async def scenario(engine):
        # Which error depends on when the driver notices; what matters is the pool afterwards.
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)):
            async with begin(engine, first=LOCK) as raw:
                pid = await raw.fetchval("SELECT pg_backend_pid()")
                killer = await asyncpg.connect(database.owner_url.replace("+asyncpg", ""))
                try:
                    await killer.execute("SELECT pg_terminate_backend($1)", pid)
                finally:
                    await killer.close()
                await raw.execute("SELECT 1")
        return await asyncio.wait_for(clean(engine), 10)

    assert run(database, scenario) == (False, 0, 1)


async def backend(engine) -> int:
    async with engine.connect() as connection:
        return await (await driver(connection)).fetchval("SELECT pg_backend_pid()")


async def other_session(database):
    return await asyncpg.connect(database.owner_url.replace("+asyncpg", ""))


def test_a_pooled_connection_whose_server_side_died_while_idle_is_replaced(database):
    async def scenario(engine):
        idle = await backend(engine)
        killer = await other_session(database)
        try:
            await killer.execute("SELECT pg_terminate_backend($1)", idle)
        finally:
            await killer.close()
        await asyncio.sleep(0.2)  # the driver sees the socket close
        async with begin(engine, first=LOCK) as raw:
            answer = await raw.fetchval("SELECT 1")
        return answer, await backend(engine) != idle, await clean(engine)

    assert run(database, scenario) == (1, True, (False, 0, 1))


def test_a_connection_left_inside_a_transaction_is_replaced_and_its_locks_end(database):
    async def scenario(engine):
        async with engine.connect() as connection:  # as if a transaction had been abandoned on it
            await (await driver(connection)).execute(f"BEGIN; {LOCK}")
        state = await clean(engine)
        probe = await other_session(database)
        try:
            free = await probe.fetchval("SELECT pg_try_advisory_lock($1)", APPEND_LOCK)
        finally:
            await probe.close()
        return state, free

    assert run(database, scenario) == ((False, 0, 1), True)


def test_cancelled_while_waiting_for_the_append_lock_it_leaves_nothing_behind(database):
    async def scenario(engine):
        holder = await other_session(database)
        await holder.execute("SELECT pg_advisory_lock($1)", APPEND_LOCK)
        waiting = asyncio.create_task(_enter(engine))
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await holder.close()  # the lock is free again
        async with begin(engine, first=LOCK) as raw:
            locked = await raw.fetchval(HELD)
        return locked, await clean(engine)

    assert run(database, scenario) == (1, (False, 0, 1))


async def _enter(engine):
    async with begin(engine, first=LOCK):
        pass


def test_the_service_engine_refuses_unusable_connections(database):
    assert event.contains(service_engine(database).sync_engine, "checkout", refuse_unusable)
