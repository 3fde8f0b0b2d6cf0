"""What a small batch of `serve` costs in exchanges with PostgreSQL, counted on a real server: the fixed toll every
batch pays whatever its size, which at a steady trickle of records (a batch of a few events every few
milliseconds) is most of what `serve` spends. Each figure is a ceiling: a change that adds a round trip to every
batch fails here, and says which statements a batch sent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from asyncpg.connection import Connection

from consumers.claims import Claims
from consumers.metrics import Metrics
from consumers.settle import Settler
from ledger.intake import from_lines
from ledger.service import LedgerService
from tests import builders as b
from tests.ledger.helpers import fetch, verify

TP = ("events", 0)
MEMBERS = [f"M{n}" for n in range(12)]


class RoundTrips:
    """Every exchange with the server a session waits for the answer to, in the order sent: a simple query (BEGIN
    with its locks, COMMIT), a statement bound and executed, a statement prepared because the connection had not
    prepared it yet (asyncpg keeps those it has), a COPY."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        get_statement, do_execute = Connection._get_statement, Connection._do_execute
        execute, copy = Connection.execute, Connection.copy_records_to_table

        async def counted_get_statement(connection, query, timeout, **kw):
            record_class = kw.get("record_class") or connection._protocol.get_record_class()
            if connection._stmt_cache.get((query, record_class, kw.get("ignore_custom_codec", False))) is None:
                self.sent.append("prepare " + query[:60])
            return await get_statement(connection, query, timeout, **kw)

        async def counted_do_execute(connection, query, *args, **kw):
            self.sent.append("execute " + query[:60])
            return await do_execute(connection, query, *args, **kw)

        async def counted_execute(connection, query, *args, **kw):
            if not args:  # with arguments, it binds and executes (counted above)
                self.sent.append("query " + query[:60])
            return await execute(connection, query, *args, **kw)

        async def counted_copy(connection, table, **kw):
            self.sent.append(f"copy {table}")
            return await copy(connection, table, **kw)

        monkeypatch.setattr(Connection, "_get_statement", counted_get_statement)
        monkeypatch.setattr(Connection, "_do_execute", counted_do_execute)
        monkeypatch.setattr(Connection, "execute", counted_execute)
        monkeypatch.setattr(Connection, "copy_records_to_table", counted_copy)

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


@dataclass
class Record:
    """What the settler reads of a Kafka record."""

    offset: int
    value: bytes
    topic: str = TP[0]
    partition: int = TP[1]
    key: bytes | None = None
    timestamp: int | None = None
    headers: list = field(default_factory=list)


class Fetched:
    """The consumer as the settler sees it between two batches: nothing more fetched yet."""

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        return {}


async def _quiet(settler: Settler) -> None:
    """Until the batch in flight has committed and been landed with nothing else to do (`_land_when_quiet`), as
    it is when records arrive more slowly than a batch commits."""
    for _ in range(500):
        if settler.in_flight is None and not settler._landing:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batch in flight was never landed")


# What a pooled connection sends once, the first time it is handed a statement, whichever batch that is: the
# statement prepared, and the types of its parameters looked up.
ONCE = ("prepare ", "execute \n", "execute WITH RECURSIVE typeinfo")


def _steady(sent: list[str]) -> list[str]:
    return [s for s in sent if not s.startswith(ONCE)]


def _resettled(settler: Settler) -> float | None:
    return settler.metrics.registry.get_sample_value("medledger_batches_resettled_total")


def _visits(first: int, count: int) -> list[Record]:
    return [
        Record(offset, b.as_line(b.visit(MEMBERS[offset % len(MEMBERS)], b.NANJING, on="2023-07-03")).encode())
        for offset in range(first, first + count)
    ]


async def _settler(service: LedgerService) -> Settler:
    """A settler of the members enrolled, holding the partition, with nothing consumed yet."""
    await service.ingest_batch(list(from_lines(b.lines(*(b.enrolled(m, b.NANJING) for m in MEMBERS)), "seed")))
    claims = Claims(service, "group", lambda: Fetched())
    claims.held = await service.claim("group", [TP])
    return Settler(service, claims, Metrics())


async def _trickle(settler: Settler, trips: RoundTrips, batches: int, size: int, first: int = 0) -> list[list[str]]:
    """`batches` batches of `size` visits from offset `first`, each committed and landed before the next arrives:
    what each sent."""
    sent = []
    for n in range(batches):
        trips.take()
        await settler(_visits(first + n * size, size))
        # in flight now, and what the next batch reads through: the batch before it is not held any longer
        assert settler.in_flight is None or settler._landed is None
        await _quiet(settler)
        sent.append(trips.take())
    return sent


def test_a_small_batch_after_a_pause_costs_two_reads_and_a_three_round_trip_commit(database, monkeypatch):
    """A batch that finds no batch in flight (the one before landed while the topic was quiet) is settled through
    the one committed before it, as one settled while the one before commits: it reads what the ledger holds of
    its events (their ids, their members), then BEGIN with the append locks, the one write statement, COMMIT.
    Read afresh each time, it also read the closed years, its regions' heads, arrivals and the watermark: 9 round
    trips a batch instead of 5."""
    b.fresh()
    trips = RoundTrips(monkeypatch)

    async def scenario() -> list[list[str]]:
        async with LedgerService(database, batch_size=50) as service:
            return await _trickle(await _settler(service), trips, batches=6, size=4)

    sent = asyncio.run(scenario())
    for batch in map(_steady, sent[2:]):
        assert len(batch) <= 5, "a small batch sent:\n" + "\n".join(batch)
        assert [s.split()[0] for s in batch].count("query") == 2, batch  # BEGIN with the locks, and COMMIT


def test_a_batch_settled_through_one_committed_before_is_settled_again_when_another_writer_came_in_between(
    database, monkeypatch
):
    """The batch landed before is what the next one reads its members through: had another writer settled a visit
    of the same member meanwhile, the next batch would count the member's deductible and limits without it. Its
    commit finds the ledger moved and the batch is settled again from the ledger; after anything moved the
    consumer's positions, the next batch reads the ledger afresh."""
    b.fresh()
    trips = RoundTrips(monkeypatch)

    async def scenario() -> tuple[Settler, list[list[str]]]:
        async with LedgerService(database, batch_size=50) as service:
            settler = await _settler(service)
            await _trickle(settler, trips, batches=2, size=len(MEMBERS))
            # another writer: a visit of M0 settled outside this consumer, with no offsets of its own
            await service.ingest_batch(list(from_lines([b.as_line(b.visit("M0", b.NANJING, on="2023-07-04"))], "x")))
            resettled = await _trickle(settler, trips, batches=1, size=1, first=2 * len(MEMBERS))
            assert _resettled(settler) == 1
            settler.claims.moves += 1  # a rewind, a rebalance
            afresh = await _trickle(settler, trips, batches=1, size=1, first=2 * len(MEMBERS) + 1)
            return settler, resettled + afresh

    settler, (resettled, afresh) = asyncio.run(scenario())
    rolled_back = resettled.index("query ROLLBACK")  # the batch's own transaction, then settled again in another
    assert resettled[-1] == "query COMMIT" and "query BEGIN" in " ".join(resettled[rolled_back:]), resettled
    assert any("closed_years" in s for s in afresh), afresh  # read afresh, not through the batch before
    assert _resettled(settler) == 1
    visits = fetch(database, "SELECT count(*) FROM ledger_settlements WHERE member_id = 'M0'")[0][0]
    assert visits == 4  # two trickled batches, the other writer's, and the batch settled again
    assert verify(database).ok


def test_small_batches_arriving_while_the_one_before_commits_cost_five_round_trips_each(database, monkeypatch):
    """Each batch settled through the one still committing: the same two reads and three-round-trip commit."""
    b.fresh()
    trips = RoundTrips(monkeypatch)

    async def scenario() -> list[str]:
        async with LedgerService(database, batch_size=50) as service:
            settler = await _settler(service)
            for n in range(14):  # the first eight: each pooled connection prepares its statements
                if n == 8:
                    await _quiet(settler)
                    trips.take()
                await settler(_visits(n * 4, 4))  # the batch before still in flight, or just committed
            await _quiet(settler)
            return trips.take()

    sent = _steady(asyncio.run(scenario()))
    assert len(sent) <= 6 * 5, "six small batches sent:\n" + "\n".join(sent)
    assert sent.count("query COMMIT") == 6
