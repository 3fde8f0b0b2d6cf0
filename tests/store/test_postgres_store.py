from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.db.event_store import PostgresEventStore, begin
from tests.store.contract import EventStoreContract


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, database):
        self.db = database

    @asynccontextmanager
    async def session(self):
        engine = create_async_engine(self.db.app_url)
        try:
            async with begin(engine) as raw:
                yield PostgresEventStore(raw)
        finally:
            await engine.dispose()

    async def forge(self, seq, **columns):
        """With the owner's rights: switch the append-only guard off, rewrite a row, switch it back on."""
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        await self._as_owner(f"UPDATE ledger_events SET {assignments} WHERE seq = :seq", seq=seq, **columns)

    async def remove(self, seq):
        await self._as_owner("DELETE FROM ledger_events WHERE seq = :seq", seq=seq)

    async def _as_owner(self, statement, **values):
        engine = create_async_engine(self.db.owner_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("ALTER TABLE ledger_events DISABLE TRIGGER USER"))
                await connection.execute(text(statement), values)
                await connection.execute(text("ALTER TABLE ledger_events ENABLE TRIGGER USER"))
        finally:
            await engine.dispose()


def test_the_contracts_large_append_is_one_this_store_copies_in():
    from ledger.db.writes import LARGE
    from tests.store.contract import LARGE_APPEND

    assert LARGE_APPEND >= LARGE
