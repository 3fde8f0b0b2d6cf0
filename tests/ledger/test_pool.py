"""A borrower waits for a pooled connection a bounded time, then fails as the database being away for now."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from consumers.poison import deterministic
from ledger.db import connect
from ledger.db.connect import PoolExhausted, close_pool, lent, open_pool
from ledger.db.event_store import begin, reading


def test_a_borrower_of_a_pool_whose_connections_are_all_lent_fails_after_the_wait(database, monkeypatch):
    monkeypatch.setattr(connect, "ACQUIRE_WAIT", 0.3)

    async def scenario():
        pool = await open_pool(database.app_url, 1)
        try:
            async with reading(pool) as held:  # the pool's one connection, lent and not given back
                assert await held.fetchval("SELECT 1") == 1
                for borrow in (reading, begin):
                    started = time.monotonic()
                    with pytest.raises(PoolExhausted) as refused:
                        await asyncio.wait_for(_borrowed(borrow, pool), 10)  # without a limit: TimeoutError here
                    waited = time.monotonic() - started
                    assert 0.25 < waited < 5, waited
                    assert "within 0.3 s: all 1 of the pool are lent" in str(refused.value)
                    assert isinstance(refused.value, TimeoutError) and not deterministic(refused.value)
            async with begin(pool) as raw:  # given back: lent again at once
                return await raw.fetchval("SELECT 2")
        finally:
            await close_pool(pool)

    assert asyncio.run(scenario()) == 2


async def _borrowed(borrow, pool) -> None:
    async with borrow(pool):
        pass


def test_a_connection_comes_back_to_the_pool_after_an_error_or_a_cancellation(database):
    async def scenario():
        pool = await open_pool(database.app_url, 1)
        try:
            with pytest.raises(ZeroDivisionError):
                async with lent(pool) as raw:
                    await raw.fetchval("SELECT 1")
                    1 / 0  # noqa: B018 - the borrower fails
            stuck = asyncio.create_task(_hold(pool))
            await asyncio.sleep(0.2)
            stuck.cancel()  # the borrower is cancelled while it holds the connection
            with contextlib.suppress(asyncio.CancelledError):
                await stuck
            async with lent(pool) as raw:  # back, both times: lent at once
                return await raw.fetchval("SELECT 3")
        finally:
            await close_pool(pool)

    assert asyncio.run(scenario()) == 3


def test_a_ledger_reader_s_questions_wait_for_a_connection_as_long_as_it_was_told(database):
    from ledger.enquiry import Enquiry, LedgerReader

    async def scenario():
        async with LedgerReader(database, wait=0.2) as reader:
            held = [await reader.pool.acquire() for _ in range(reader.pool.get_max_size())]
            try:
                started = time.monotonic()
                with pytest.raises(PoolExhausted, match="within 0.2 s: all 4 of the pool are lent"):
                    await asyncio.wait_for(Enquiry(reader).member("370000", "nobody"), 10)
                return time.monotonic() - started
            finally:
                for connection in held:
                    await reader.pool.release(connection)

    assert asyncio.run(scenario()) < 5


async def _hold(pool) -> None:
    async with lent(pool) as raw:
        await raw.fetchval("SELECT 1")
        await asyncio.sleep(3600)
