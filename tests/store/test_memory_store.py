from contextlib import asynccontextmanager

from ledger.memory_store import MemoryEventStore
from tests.store.contract import EventStoreContract


class TestMemoryEventStore(EventStoreContract):
    def setup_method(self):
        self.store = MemoryEventStore()

    @asynccontextmanager
    async def session(self):
        yield self.store

    async def forge(self, seq, **columns):
        self.store.forge(seq, **columns)

    async def remove(self, seq):
        self.store.remove(seq)
