"""`begin`: the hot path's transactions on a pooled connection. Whatever happens inside, the connection goes back to
the pool outside any transaction and without the locks it took."""

import asyncio

import asyncpg
import pytest

from ledger.db.connect import close_pool, open_pool
from ledger.db.event_store import APPEND_LOCK, LOCK, begin, reading

HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"


async def clean(pool) -> tuple[bool, int, int]:
    """The pooled connection's state: (in a transaction, advisory locks held, 1 if it answers)."""
    async with pool.acquire() as raw:
        return raw.is_in_transaction(), await raw.fetchval(HELD), await raw.fetchval("SELECT 1")


def run(database, scenario):
    async def main():
        pool = await open_pool(database.owner_url, 1)  # as `service_pool` opens it, one connection
        try:
            return await scenario(pool)
        finally:
            await close_pool(pool)

    return asyncio.run(main())


def test_it_commits_on_exit_holding_the_lock_sent_with_begin(database):
    async def scenario(pool):
        async with pool.acquire() as raw:
            await raw.execute("CREATE TABLE begin_probe (n int)")
        async with begin(pool, first=LOCK) as raw:
            assert raw.is_in_transaction()
            assert await raw.fetchval(HELD) == 1
            assert await raw.fetchval("SELECT objid FROM pg_locks WHERE locktype = 'advisory'") == APPEND_LOCK
            await raw.execute("INSERT INTO begin_probe VALUES (1)")
        assert await clean(pool) == (False, 0, 1)
        async with pool.acquire() as raw:
            return await raw.fetchval("SELECT count(*) FROM begin_probe")

    assert run(database, scenario) == 1


def test_an_error_inside_rolls_everything_back(database):
    async def scenario(pool):
        async with pool.acquire() as raw:
            await raw.execute("CREATE TABLE begin_probe (n int)")
        with pytest.raises(RuntimeError, match="in Python"):
            async with begin(pool, first=LOCK) as raw:
                await raw.execute("INSERT INTO begin_probe VALUES (1)")
                raise RuntimeError("an error in Python")
        with pytest.raises(Exception, match="division by zero"):
            async with begin(pool) as raw:
                await raw.execute("INSERT INTO begin_probe VALUES (2)")
                await raw.execute("SELECT 1 / 0")
        state = await clean(pool)
        async with pool.acquire() as raw:
            return state, await raw.fetchval("SELECT count(*) FROM begin_probe")

    assert run(database, scenario) == ((False, 0, 1), 0)


def test_a_transaction_cancelled_mid_statement_leaves_no_connection_behind_in_it(database):
    async def scenario(pool):
        started = asyncio.Event()

        async def batch():
            async with begin(pool, first=LOCK) as raw:
                started.set()
                await raw.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(batch())
        await started.wait()
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.wait_for(clean(pool), 10)

    assert run(database, scenario) == (False, 0, 1)


def test_a_connection_whose_server_side_is_gone_is_replaced(database):
    async def scenario(pool):
        # Which error depends on when the driver notices; what matters is the pool afterwards.
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)):
            async with begin(pool, first=LOCK) as raw:
                pid = await raw.fetchval("SELECT pg_backend_pid()")
                killer = await other_session(database)
                try:
                    await killer.execute("SELECT pg_terminate_backend($1)", pid)
                finally:
                    await killer.close()
                await raw.execute("SELECT 1")
        return await asyncio.wait_for(clean(pool), 10)

    assert run(database, scenario) == (False, 0, 1)


async def backend(pool) -> int:
    async with pool.acquire() as raw:
        return await raw.fetchval("SELECT pg_backend_pid()")


async def other_session(database):
    return await asyncpg.connect(database.owner_url.replace("+asyncpg", ""))


def test_a_pooled_connection_whose_server_side_died_while_idle_is_replaced(database):
    async def scenario(pool):
        idle = await backend(pool)
        killer = await other_session(database)
        try:
            await killer.execute("SELECT pg_terminate_backend($1)", idle)
        finally:
            await killer.close()
        await asyncio.sleep(0.2)  # the driver sees the socket close
        async with begin(pool, first=LOCK) as raw:
            answer = await raw.fetchval("SELECT 1")
        return answer, await backend(pool) != idle, await clean(pool)

    assert run(database, scenario) == (1, True, (False, 0, 1))


def test_a_connection_given_back_inside_a_transaction_is_rolled_back_and_its_locks_end(database):
    async def scenario(pool):
        async with pool.acquire() as raw:  # as if a transaction had been abandoned on it
            await raw.execute(f"BEGIN; {LOCK}")
        state = await clean(pool)
        probe = await other_session(database)
        try:
            free = await probe.fetchval("SELECT pg_try_advisory_lock($1)", APPEND_LOCK)
        finally:
            await probe.close()
        return state, free

    assert run(database, scenario) == ((False, 0, 1), True)


def test_cancelled_while_waiting_for_the_append_lock_it_leaves_nothing_behind(database):
    async def scenario(pool):
        holder = await other_session(database)
        await holder.execute("SELECT pg_advisory_lock($1)", APPEND_LOCK)
        waiting = asyncio.create_task(_enter(pool))
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await holder.close()  # the lock is free again
        async with begin(pool, first=LOCK) as raw:
            locked = await raw.fetchval(HELD)
        return locked, await clean(pool)

    assert run(database, scenario) == (1, (False, 0, 1))


async def _enter(pool):
    async with begin(pool, first=LOCK):
        pass


def test_a_reading_interrupted_mid_statement_closes_its_connection_and_the_pool_opens_another(database):
    async def scenario(pool):
        first = await backend(pool)
        with pytest.raises(TimeoutError):
            async with reading(pool) as raw:
                await asyncio.wait_for(raw.execute("SELECT pg_sleep(30)"), 0.2)
        return await backend(pool) != first, await clean(pool)

    assert run(database, scenario) == (True, (False, 0, 1))


def test_json_arrives_decoded_and_is_sent_as_text_and_giving_a_connection_back_costs_no_round_trip(database):
    """The pool resets nothing but an open transaction between borrowers (`db.connect`): a session setting made by
    one is still there for the next, which is what shows no `RESET ALL` was sent."""

    async def scenario(pool):
        async with pool.acquire() as raw:
            decoded = await raw.fetchrow(
                "SELECT '{\"fen\": 1.10, \"n\": [1]}'::jsonb, $1::jsonb, '[2]'::json", '{"sent": "as text"}'
            )
            await raw.execute("SET application_name = 'borrower one'")
        async with pool.acquire() as raw:
            kept = await raw.fetchval("SHOW application_name")
        return tuple(decoded), kept

    assert run(database, scenario) == (({"fen": 1.10, "n": [1]}, {"sent": "as text"}, [2]), "borrower one")
