"""What every recorder promises (`ledger.recorder`), checked on the memory recorder and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ledger.batch import BatchRows
from ledger.carry import Conflict
from ledger.chain import GENESIS, link, text_digest
from ledger.db.tracking import OutOfSequence, StaleClaim
from ledger.intake import from_lines
from ledger.memory_recorder import MemoryRecorder
from ledger.recorder import Claim, Collision, Tracking
from ledger.service import LedgerService
from ledger.store import NewEvent, chained
from ledger.streams import FIRST_OTHER, base, genesis
from policies.parameters import parse_parameters
from policies.recorded import recorded_parameters
from policies.registry import PolicyRegistry
from projections import member_year
from tests.ledger.helpers import IM_PARAMETERS, example_lines, fetch

PARAMETERS = recorded_parameters("")
DIGEST = text_digest(PARAMETERS)
REGISTRY = PolicyRegistry(parse_parameters(PARAMETERS))
AT = datetime(2024, 3, 1, 9, tzinfo=UTC)
NANJING, WEIHAI = "320100", "371000"
START = (base(320100), genesis(NANJING, 0, GENESIS))  # Nanjing's stream, anchored to an empty history


def new(event_id: str, member_id: str = "m1", payload: str | None = None, region: str = NANJING) -> NewEvent:
    payload = payload or f'{{"event_id":"{event_id}","member_id":"{member_id}"}}'
    return NewEvent(event_id, "account.contribution_posted", region, member_id, AT, payload, DIGEST, "test")


def batch(events: list[NewEvent], seq: int = START[0], prev: bytes = START[1]) -> BatchRows:
    return BatchRows(events=chained(events, seq, prev))


def parked(event_id: str, member_id: str, arrival: int, at: datetime = AT, region: str = NANJING) -> tuple:
    return (event_id, region, member_id, f'{{"event_id":"{event_id}"}}', "test", at, arrival)


async def write(recorder, rows: BatchRows, regions=(NANJING,), **options) -> None:
    async with recorder.writing("test", regions) as ledger:
        await ledger.write_batch(rows, REGISTRY, DIGEST, PARAMETERS, regions=regions, **options)


async def head(recorder, region: str = NANJING) -> tuple[int, bytes]:
    """Where `region`'s stream stands (made, if it has none yet)."""
    async with recorder.reading() as ledger:
        found = (await ledger.stream_heads([region], make=True))[region]
    return found.seq, found.hash


def test_appends_continue_the_chain_without_a_gap(on_recorder):
    async def scenario(recorder):
        assert await head(recorder) == START
        first = batch([new("e1"), new("e2")])
        await write(recorder, first)
        assert await head(recorder) == (START[0] + 2, first.events[-1].hash)
        second = batch([new("e3")], *await head(recorder))
        await write(recorder, second)
        seq, hash_ = await head(recorder)
        assert seq == START[0] + 3 and hash_ == link(first.events[-1].hash, seq, second.events[0].payload)
        async with recorder.reading() as ledger:
            held = await ledger.held(["e1", "e3", "e9"])
        assert held == [("e1", first.events[0].payload), ("e3", second.events[0].payload)]

    on_recorder(scenario)


def test_a_batch_with_an_event_already_recorded_is_refused_whole(on_recorder):
    async def scenario(recorder):
        await head(recorder)
        await write(recorder, batch([new("e1")]))
        for clash, taken_id in (
            (batch([new("e2"), new("e1", payload='{"again":1}')], *await head(recorder)), True),  # an id recorded
            (batch([new("e3"), new("e3", payload='{"twice":1}')], *await head(recorder)), True),  # an id twice
            (batch([new("e4")]), False),  # a position taken
        ):
            with pytest.raises(Collision) as refused:
                await write(recorder, clash)
            assert refused.value.taken_id is taken_id
        assert (await head(recorder))[0] == START[0] + 1
        async with recorder.reading() as ledger:
            assert await ledger.held(["e2", "e3", "e4"]) == []

    on_recorder(scenario)


def test_parked_events_wait_in_arrival_order_until_appended_or_refused(on_recorder):
    async def scenario(recorder):
        rows = BatchRows(
            parked=[parked("p2", "m1", 1), parked("p1", "m1", 2), parked("q", "m2", 3), parked("p3", "m1", 4)]
        )
        await write(recorder, rows)
        async with recorder.reading() as ledger:
            assert await ledger.arrivals([NANJING, WEIHAI]) == {NANJING: 4, WEIHAI: 0}
            waiting = await ledger.waiting_for([("320100", "m1")])
            assert [row[4] for row in waiting] == ["p2", "p1", "p3"]
            assert waiting[0] == ("320100", "m1", '{"event_id":"p2"}', "test", "p2")
        # released: p1 appended to the ledger; p3's own bytes refused (a later version no longer reads them)
        release = batch([new("p1", payload='{"event_id":"p1"}')], *await head(recorder))
        release.rejections.append(
            (
                None,
                "p3",
                "test",
                "invalid_event",
                "no longer decodes",
                '{"event_id":"p3"}',
                text_digest('{"event_id":"p3"}'),
                None,
                None,
            )
        )
        await write(recorder, release)
        async with recorder.reading() as ledger:
            assert [row[4] for row in await ledger.waiting_for([("320100", "m1")])] == ["p2"]
            assert sorted(event_id for event_id, _ in await ledger.held(["p1", "p2", "p3"])) == ["p1", "p1", "p2"]
            assert await ledger.refused([text_digest('{"event_id":"p3"}'), "0" * 64]) == {
                text_digest('{"event_id":"p3"}')
            }

    on_recorder(scenario)


def test_parked_events_that_waited_too_long_come_oldest_first(on_recorder):
    async def scenario(recorder):
        old = AT - timedelta(days=40)
        rows = BatchRows(
            parked=[
                parked("a", "m1", 1, old),
                parked("b", "m2", 2),
                parked("w", "m4", 3, old, region=WEIHAI),
                parked("c", "m3", 4, old),
            ]
        )
        await write(recorder, rows, regions=(NANJING, WEIHAI))
        cutoff = AT - timedelta(days=30)
        async with recorder.reading() as ledger:
            assert await ledger.expired_regions(cutoff) == [NANJING, WEIHAI]
            expired = await ledger.expired_parked(cutoff, 10, NANJING)
            assert [(row[0], row[3]) for row in expired] == [("a", old), ("c", old)]
            assert [row[0] for row in await ledger.expired_parked(cutoff, 1, NANJING)] == ["a"]
            assert [row[0] for row in await ledger.expired_parked(cutoff, 10, WEIHAI)] == ["w"]
            assert await ledger.expired_regions(AT - timedelta(days=50)) == []

    on_recorder(scenario)


def test_a_parked_event_waits_while_only_another_region_holds_its_id(on_recorder):
    """A parked event waits no more once its own region's stream holds its id (it was released there). Another
    region's event under the same id, appended by a writer that does not wait for this region's, does not end its
    wait: it is refused when it is released or expires (`pipeline.Parking`), and meanwhile both are held."""

    async def scenario(recorder):
        old = AT - timedelta(days=40)
        await write(recorder, BatchRows(parked=[parked("x", "m1", 1, old, region=WEIHAI)]), regions=(WEIHAI,))
        await head(recorder)
        await write(recorder, batch([new("x", payload='{"event_id":"x","other":1}')], *await head(recorder)))
        async with recorder.reading() as ledger:
            assert [row[4] for row in await ledger.waiting_for([(WEIHAI, "m1")])] == ["x"]
            assert [row[0] for row in await ledger.expired_parked(AT - timedelta(days=30), 10, WEIHAI)] == ["x"]
            assert await ledger.expired_regions(AT - timedelta(days=30)) == [WEIHAI]
            assert sorted(await ledger.held(["x"])) == [("x", '{"event_id":"x","other":1}'), ("x", '{"event_id":"x"}')]

    on_recorder(scenario)


def test_the_watermark_moves_with_every_write_a_batch_reads(on_recorder):
    async def scenario(recorder):
        await head(recorder)
        async with recorder.reading() as ledger:
            start = await ledger.watermark([NANJING], [text_digest("{")])
        assert (start.heads, start.arrivals, start.refused) == (f"{NANJING}:{START[0]}", f"{NANJING}:0", 0)
        rows = batch([new("e1")])
        rows.parked.append(parked("p", "m9", 1))
        rows.rejections.append((None, None, "test", "invalid_json", "bad", "{", text_digest("{"), None, None))
        await write(recorder, rows, expected=start, refusals=[text_digest("{")])
        async with recorder.reading() as ledger:
            moved = await ledger.watermark([NANJING], [text_digest("{")])
            others = await ledger.watermark([NANJING], [text_digest("[")])  # a refusal of other bytes
        assert (moved.heads, moved.arrivals, moved.refused) == (f"{NANJING}:{START[0] + 1}", f"{NANJING}:1", 1)
        assert others.refused == 0
        assert moved.projections == start.projections
        # settled from where the ledger no longer is: nothing of it is kept
        with pytest.raises(Conflict):
            await write(recorder, batch([new("e2")], *await head(recorder)), expected=start)
        assert (await head(recorder))[0] == START[0] + 1

    on_recorder(scenario)


def test_a_region_s_watermark_is_not_moved_by_a_writer_of_another_region(on_recorder):
    async def scenario(recorder):
        await head(recorder)
        await head(recorder, WEIHAI)
        async with recorder.reading() as ledger:
            nanjing = await ledger.watermark([NANJING])
            both = await ledger.watermark([NANJING, WEIHAI])
        other = batch([new("w1", region=WEIHAI)], *await head(recorder, WEIHAI))
        other.parked.append(parked("wp", "m9", 1, region=WEIHAI))
        await write(recorder, other, regions=(WEIHAI,))
        async with recorder.reading() as ledger:
            assert await ledger.watermark([NANJING]) == nanjing
            assert await ledger.watermark([NANJING, WEIHAI]) != both
            heads = await ledger.stream_heads([NANJING, WEIHAI])
        assert heads[NANJING].seq == START[0] and heads[WEIHAI].seq == base(371000) + 1
        # a batch of Nanjing settled before Weihai's write still commits
        await write(recorder, batch([new("e1")]), expected=nanjing)
        assert (await head(recorder))[0] == START[0] + 1

    on_recorder(scenario)


def test_a_writer_waits_for_its_region_s_lock_but_not_for_another_region_s(on_recorder):
    async def scenario(recorder):
        async with recorder.writing("first", [NANJING]):
            async with asyncio.timeout(5):  # another region's writer goes on
                async with recorder.writing("second", [WEIHAI]):
                    pass

            async def same_region():
                async with recorder.writing("third", [WEIHAI, NANJING]):
                    pass

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(same_region(), 0.5)

    on_recorder(scenario)


def test_a_failed_batch_leaves_behind_nothing_of_its_own_and_all_of_another_region_s_written_meanwhile(on_recorder):
    async def scenario(recorder):
        nanjing, weihai = await head(recorder), await head(recorder, WEIHAI)
        await write(recorder, BatchRows())  # the parameter set, which both batches' events name, committed
        mine = batch([new("n1"), new("n2")], *nanjing)
        mine.parked.append(parked("np", "m7", 1))
        theirs = batch([new("w1", region=WEIHAI), new("w2", region=WEIHAI)], *weihai)
        theirs.parked.append(parked("wp", "m8", 1, region=WEIHAI))
        with pytest.raises(RuntimeError, match="half way"):
            async with recorder.writing("mine", [NANJING]) as ledger:
                await ledger.write_batch(mine, REGISTRY, DIGEST)
                await write(recorder, theirs, regions=(WEIHAI,))  # commits while this batch is open
                raise RuntimeError("failed half way")
        assert await head(recorder) == nanjing
        assert await head(recorder, WEIHAI) == (weihai[0] + 2, theirs.events[-1].hash)
        async with recorder.reading() as ledger:
            assert [event_id for event_id, _ in await ledger.held(["n1", "n2", "w1", "w2", "np", "wp"])] == [
                "w1",
                "w2",
                "wp",
            ]
            assert [row[4] for row in await ledger.waiting_for([(NANJING, "m7"), (WEIHAI, "m8")])] == ["wp"]
            assert await ledger.arrivals([NANJING, WEIHAI]) == {NANJING: 0, WEIHAI: 1}
        # and Nanjing's batch, written again, continues its stream where it stood
        await write(recorder, mine)
        assert await head(recorder) == (nanjing[0] + 2, mine.events[-1].hash)

    on_recorder(scenario)


def test_each_region_s_stream_is_numbered_by_its_code_and_adopts_for_itself(on_recorder):
    async def scenario(recorder):
        lines = example_lines("nanjing", "weihai")
        async with LedgerService(None, batch_size=7, recorder=recorder) as service:
            await service.ingest(from_lines(lines, "x"))
        async with recorder.reading() as ledger:
            heads = await ledger.stream_heads()
            for region in (NANJING, WEIHAI):
                assert await ledger.last_adopted(region) == service.digest
        assert [(h.region, h.stream, h.adopted) for h in heads.values()] == [
            (NANJING, 320100, service.digest),
            (WEIHAI, 371000, service.digest),
        ]
        assert all(h.position > 1 for h in heads.values())

    on_recorder(scenario)


def test_claims_fence_a_consumer_that_lost_its_partitions(on_recorder):
    async def scenario(recorder):
        partition = ("events", 0)
        first = await recorder.claim("c", [partition])
        assert first == {partition: Claim(1, None)}
        await head(recorder)
        rows = batch([new("e1")])
        async with recorder.reading() as ledger:
            mark = await ledger.watermark([NANJING])
        await write(recorder, rows, tracking=Tracking("c", first, {partition: (0, 5)}), expected=mark)
        assert await recorder.stored_offsets("c", [partition]) == {partition: Claim(1, 5)}
        second = await recorder.claim("c", [partition])  # another instance took it over
        assert second == {partition: Claim(2, 5)}
        async with recorder.reading() as ledger:
            mark = await ledger.watermark([NANJING])
        with pytest.raises(StaleClaim):
            await write(
                recorder,
                batch([new("e2")], *await head(recorder)),
                tracking=Tracking("c", first, {partition: (5, 9)}),
                expected=mark,
            )
        with pytest.raises(OutOfSequence):
            await write(
                recorder,
                batch([new("e2")], *await head(recorder)),
                tracking=Tracking("c", second, {partition: (3, 9)}),
                expected=mark,
            )
        assert (await head(recorder))[0] == START[0] + 1
        async with recorder.writing("test", [NANJING]) as ledger:
            await ledger.advance("c", second, {partition: (5, 7)})
        assert await recorder.stored_offsets("c", [partition]) == {partition: Claim(2, 7)}
        assert await recorder.rebase("c", partition, Claim(2, 7), 6) == Claim(2, 6)
        assert await recorder.rebase("c", partition, Claim(2, 7), 4) is None  # no longer where it stood
        assert await recorder.stored_offsets("c", [("events", 1)]) == {}

    on_recorder(scenario)


def test_members_settlements_and_projections_are_read_back_as_written(on_recorder):
    """The example files ingested through the service: what the next batch loads is what the batches wrote."""

    async def scenario(recorder):
        published: list[dict] = []
        async with LedgerService(None, batch_size=7, recorder=recorder) as service:
            stats = await service.ingest(from_lines(example_lines("nanjing", "weihai"), "x"), published.extend)
        assert stats.appended > 100 and stats.settlements > 10
        events = [item.event for item in from_lines(example_lines("nanjing", "weihai"), "x") if item.event]
        async with recorder.reading() as ledger:
            loaded: dict = {}
            book = await ledger.load_book(service.registry, events, loaded)
            chunks = [chunk async for chunk in ledger.region_members("320100", 2)]
            facilities = await ledger.visit_facilities(
                [e.event_id for e in events if e.event_type == "visit.submitted"]
            )
            assert await ledger.earlier_shapes() == 0
        members = [m for chunk in chunks for m in chunk]
        assert [m.member_id for m in members] == sorted(m.member_id for m in members) and len(chunks[0]) == 2
        assert {m.member_id: m for m in members} == {
            member_id: m for (region, member_id), m in book.members.items() if region == "320100"
        }
        settled = {r["visit_id"] for r in published if "settlement_id" in r and not r.get("reverses")}
        assert {visit for _, visit in book.visits} == settled
        assert len(book.reversed_visits) == sum(1 for r in published if r.get("reverses"))
        assert book.closed_years and book.payments
        assert set(loaded) == set(book.members) and set(loaded.values()) == {service.digest}
        assert set(facilities) == {e.event_id for e in events if e.event_type == "visit.submitted"}

    on_recorder(scenario)


EVENTS = "SELECT seq, event_id, hash FROM ledger_events ORDER BY seq"
STATES = "SELECT region, member_id, state::text, last_seq FROM member_state"


def test_the_memory_recorder_keeps_the_rows_and_projections_postgresql_keeps(database):
    """The four example files ingested on both: the same events and chain, ledger rows and projections."""
    lines = example_lines("nanjing", "weihai", "ningxia", "inner-mongolia")
    memory = MemoryRecorder()

    async def run(db, recorder):
        published: list[dict] = []
        async with LedgerService(db, IM_PARAMETERS, batch_size=9, recorder=recorder) as service:
            await service.ingest(from_lines(lines, "x"), published.extend)
        return published

    assert asyncio.run(run(None, memory)) == asyncio.run(run(database, None))
    t = memory.tables

    def rows(query: str) -> list[tuple]:
        return [tuple(row) for row in fetch(database, query)]

    assert sorted((e.seq, e.event_id, e.hash) for e in t.events) == [
        (seq, event_id, bytes(hash_)) for seq, event_id, hash_ in rows(EVENTS)
    ]
    assert sorted(t.settlements) == [r[0] for r in rows("SELECT settlement_id FROM ledger_settlements ORDER BY 1")]
    assert sorted(t.movements) == [r[0] for r in rows("SELECT movement_id FROM ledger_movements ORDER BY 1")]
    assert [(r[1], r[4]) for r in t.rejections] == rows(
        "SELECT seq, reason FROM ledger_rejections ORDER BY rejection_id"
    )
    assert len(t.incentives) == rows("SELECT count(*) FROM ledger_incentives")[0][0] > 0

    def years(found) -> list[tuple]:
        return sorted((*row[:-1], orjson.loads(row[-1])) for row in found)  # counters: JSON, compared by value

    assert years(t.member_year.values()) == years(rows(f"SELECT {', '.join(member_year.COLUMNS)} FROM member_year"))
    assert sorted((*key, *value) for key, value in t.fund_totals.items()) == rows(
        "SELECT region, month, pool, fund_paid, settlements, reversals FROM fund_totals ORDER BY 1, 2, 3"
    )
    assert sorted((*key, seq) for key, seq in t.closed_years.items()) == rows(
        "SELECT region, year, seq FROM closed_years ORDER BY 1, 2"
    )
    assert sorted((*key, seq) for key, seq in t.payments.items()) == rows(
        "SELECT region, payment_id, seq FROM account_payments ORDER BY 1, 2"
    )
    states = {key: (orjson.loads(state), seq) for key, (state, seq) in t.member_state.items()}
    assert states == {(r[0], r[1]): (orjson.loads(r[2]), r[3]) for r in rows(STATES)}


def test_new_regions_met_at_once_are_numbered_in_the_order_of_their_codes(on_recorder):
    """Regions whose code is no admdvs code are numbered from FIRST_OTHER as they first appear; several met at once
    in the order of their codes, whatever order they were met in (the one order every writer makes streams in)."""

    async def scenario(recorder):
        async with recorder.reading() as ledger:
            heads = await ledger.stream_heads(["zeta-region", "alpha-region"], make=True)
        assert [(h.region, h.stream) for h in heads.values()] == [
            ("alpha-region", FIRST_OTHER),
            ("zeta-region", FIRST_OTHER + 1),
        ]

    on_recorder(scenario)


def test_writers_of_two_regions_that_wait_for_each_other_s_event_ids_one_commits_the_other_collides(database):
    """An event id is the ledger's, not a region's, and writers of different regions hold no lock in common: two
    that write the same ids, each in its own order, may each wait at an id the other has written. PostgreSQL breaks
    the cycle by failing one of them; that writer raises `Collision` with `taken_id` (and the service settles its
    batch again, finding the ids held), not the server's deadlock error, which stopped `ingest` with a traceback.
    On PostgreSQL alone: the memory recorder has no transactions that wait."""
    from ledger.db.connect import service_pool
    from ledger.db.recorder import PostgresRecorder
    from tests.ledger.helpers import until_waiting

    async def scenario() -> None:
        recorder = PostgresRecorder(await service_pool(database, size=4))
        try:
            nanjing, weihai = await head(recorder), await head(recorder, WEIHAI)
            await write(recorder, BatchRows())  # the parameter set, which both batches' events name, committed
            first = batch([new("x")], *nanjing)
            then = batch([new("z")], nanjing[0] + 1, first.events[-1].hash)
            theirs = batch([new("z", region=WEIHAI), new("x", region=WEIHAI)], *weihai)
            async with recorder.writing("mine", [NANJING]) as ledger:
                await ledger.write_batch(first, REGISTRY, DIGEST)  # x written, not committed
                other = asyncio.create_task(write(recorder, theirs, regions=(WEIHAI,)))  # z written, waits at x
                async with recorder.reading() as watching:
                    await until_waiting(watching.raw, "the other writer waiting at x")
                await ledger.write_batch(then, REGISTRY, DIGEST)  # waits at z: each waits for the other
            with pytest.raises(Collision) as collided:
                await other
            assert collided.value.taken_id
            async with recorder.reading() as ledger:
                assert [event_id for event_id, _ in await ledger.held(["x", "z"])] == ["x", "z"]
            assert await head(recorder) == (nanjing[0] + 2, then.events[-1].hash)
        finally:
            await recorder.close()

    asyncio.run(scenario())
