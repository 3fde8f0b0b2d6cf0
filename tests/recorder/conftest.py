"""Every recorder (`ledger.recorder`) under one contract: the memory recorder, and PostgreSQL on the real server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ledger.db.connect import service_pool
from ledger.db.recorder import PostgresRecorder
from ledger.memory_recorder import MemoryRecorder


@pytest.fixture(params=["memory", "postgres"])
def on_recorder(request) -> Callable[[Callable[..., Awaitable]], object]:
    """`on_recorder(scenario)`: runs `await scenario(recorder)` on a fresh recorder of the parameter's kind."""
    database = request.getfixturevalue("database") if request.param == "postgres" else None

    def run(scenario):
        async def opened():
            if database is None:
                recorder = MemoryRecorder()
            else:
                recorder = PostgresRecorder(await service_pool(database, size=4))
            try:
                return await scenario(recorder)
            finally:
                await recorder.close()

        return asyncio.run(opened())

    return run
