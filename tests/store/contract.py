"""The promises every event store keeps. A backend's tests subclass `EventStoreContract` and say how to open a
store and how to forge a row behind its back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ledger.chain import GENESIS, link
from ledger.store import DuplicateEvent, NewEvent, UnrecordedParameters

AT = datetime(2023, 7, 1, 2, 0, tzinfo=UTC)
LARGE_APPEND = 1_000  # past the size from which the PostgreSQL store copies rows in (`ledger.db.writes.LARGE`)


def new(event_id: str, payload: str | None = None) -> NewEvent:
    return NewEvent(
        event_id,
        "visit.submitted",
        "320100",
        "M1",
        AT,
        payload or f'{{"event_id":"{event_id}"}}',
        "defaults",
        f"test:{event_id}",
    )


class EventStoreContract:
    def session(self):
        """An async context manager yielding a store; what it appended is committed on exit."""
        raise NotImplementedError

    async def forge(self, seq: int, **columns) -> None:
        """Change columns (payload, prev_hash) of a recorded event behind the store's back."""
        raise NotImplementedError

    async def remove(self, seq: int) -> None:
        """Delete a recorded event behind the store's back."""
        raise NotImplementedError

    def run(self, coroutine):
        async def with_parameters():
            async with self.session() as store:
                await store.record_parameters("defaults", "")
            return await coroutine

        return asyncio.run(with_parameters())

    def test_an_event_needs_its_parameter_set_recorded(self):
        async def check():
            unrecorded = NewEvent("x", "visit.submitted", "320100", "M1", AT, "{}", "nowhere")
            with pytest.raises(UnrecordedParameters):
                async with self.session() as store:
                    await store.append([unrecorded])
            async with self.session() as store:
                await store.record_parameters("defaults", "")  # again: no-op
                assert await store.read() == []

        self.run(check())

    def test_an_empty_store_has_the_genesis_head(self):
        async def check():
            async with self.session() as store:
                assert await store.head() == (0, GENESIS)
                assert await store.read() == []
                assert await store.verify() == []

        self.run(check())

    def test_appends_get_gap_free_sequences_and_chained_hashes(self):
        async def check():
            async with self.session() as store:
                first = await store.append([new("a"), new("b")])
            async with self.session() as store:
                second = await store.append([new("c")])
                events = await store.read()
            assert [e.seq for e in first + second] == [1, 2, 3]
            assert [e.event_id for e in events] == ["a", "b", "c"]
            assert events[0].prev_hash == GENESIS
            for before, after in zip(events, events[1:]):
                assert after.prev_hash == before.hash
            assert events[2].hash == link(events[1].hash, 3, events[2].payload)
            async with self.session() as store:
                assert await store.head() == (3, events[2].hash)
                assert await store.verify() == []

        self.run(check())

    def test_a_known_event_id_is_refused_and_nothing_of_the_batch_is_recorded(self):
        async def check():
            async with self.session() as store:
                await store.append([new("a")])
            with pytest.raises(DuplicateEvent) as refused:
                async with self.session() as store:
                    await store.append([new("b"), new("a")])
            assert refused.value.event_ids == ["a"]
            with pytest.raises(DuplicateEvent):
                async with self.session() as store:
                    await store.append([new("c"), new("c")])
            async with self.session() as store:
                assert [e.event_id for e in await store.read()] == ["a"]
                assert await store.known(["a", "b", "c"]) == {"a"}

        self.run(check())

    def test_read_pages_in_sequence_order(self):
        async def check():
            async with self.session() as store:
                await store.append([new(f"e{i}") for i in range(5)])
            async with self.session() as store:
                page = await store.read(after=1, limit=2)
            assert [e.seq for e in page] == [2, 3]

        self.run(check())

    def test_a_forged_payload_breaks_the_chain_where_it_was_forged(self):
        async def check():
            async with self.session() as store:
                await store.append([new("a"), new("b", '{"amount":"10.00"}'), new("c")])
            await self.forge(2, payload='{"amount":"1000.00"}')
            async with self.session() as store:
                breaks = await store.verify()
            assert [b.seq for b in breaks] == [2]
            assert "hash" in breaks[0].problem

        self.run(check())

    def test_a_large_append_is_recorded_and_chained_as_a_small_one_is(self):
        """A backend may write a large batch another way (PostgreSQL: COPY instead of one statement)."""

        async def check():
            async with self.session() as store:
                await store.append([new("first")])
            async with self.session() as store:
                stored = await store.append([new(f"bulk-{i}") for i in range(LARGE_APPEND)])
            async with self.session() as store:
                events = await store.read()
                assert await store.verify() == []
                assert await store.head() == (LARGE_APPEND + 1, events[-1].hash)
            assert [e.seq for e in events] == list(range(1, LARGE_APPEND + 2))
            assert events[1:] == stored and events[1].prev_hash == events[0].hash
            with pytest.raises(DuplicateEvent):
                async with self.session() as store:
                    await store.append([new(f"again-{i}") for i in range(LARGE_APPEND)] + [new("bulk-7")])
            async with self.session() as store:
                assert len(await store.read()) == LARGE_APPEND + 1

        self.run(check())

    def test_a_removed_event_breaks_the_chain_at_the_one_after_it(self):
        async def check():
            async with self.session() as store:
                await store.append([new("a"), new("b"), new("c"), new("d")])
            await self.remove(2)
            async with self.session() as store:
                breaks = await store.verify()
            assert [(b.seq, b.problem.split(":")[0]) for b in breaks] == [
                (3, "sequence gap"),
                (3, "prev_hash does not match the previous event's hash"),
            ]

        self.run(check())

    def test_a_changed_prev_hash_breaks_the_chain_at_that_event(self):
        async def check():
            async with self.session() as store:
                stored = await store.append([new("a"), new("b"), new("c")])
            await self.forge(2, prev_hash=GENESIS)
            async with self.session() as store:
                breaks = await store.verify()
            assert [b.seq for b in breaks] == [2, 2]
            assert "prev_hash" in breaks[0].problem and "hash does not match" in breaks[1].problem
            # Its own hash and the next event's link are untouched: only the forged row is named.
            assert (await self.read_all())[2].prev_hash == stored[1].hash

        self.run(check())

    def test_a_ledger_cut_short_is_consistent_in_itself(self):
        """What only a head kept outside the store can show (`replay --verify --anchor`)."""

        async def check():
            async with self.session() as store:
                stored = await store.append([new("a"), new("b"), new("c")])
            await self.remove(3)
            async with self.session() as store:
                assert await store.verify() == []
                assert await store.head() == (2, stored[1].hash)

        self.run(check())

    async def read_all(self):
        async with self.session() as store:
            return await store.read()
