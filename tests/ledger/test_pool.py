"""A borrower waits for a pooled connection a bounded time, then fails as the database being away for now."""

from __future__ import annotations

import asyncio
import time

import pytest

from consumers.poison import deterministic
from ledger.db import connect
from ledger.db.connect import PoolExhausted, close_pool, open_pool
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
