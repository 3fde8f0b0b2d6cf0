"""A batch's writes as one statement (small batches) and a statement at a time with COPY (large ones) leave the
same rows behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

import ledger.db.writes as writes_module
from ledger.db.event_store import COLUMNS
from ledger.db.writes import Writes
from tests import builders as b
from tests.kafka.streams import generated
from tests.ledger.helpers import IM_PARAMETERS, example_lines, fetch, ingest, plain, verify

# Every table a batch writes, with an order that does not depend on batch boundaries; columns that record when a
# row was written are left out.
TABLES = {
    "ledger_events": f"SELECT {', '.join(COLUMNS)} FROM ledger_events ORDER BY seq",
    "ledger_settlements": "SELECT * FROM ledger_settlements ORDER BY settlement_id",
    "ledger_movements": "SELECT * FROM ledger_movements ORDER BY movement_id",
    "ledger_incentives": "SELECT * FROM ledger_incentives ORDER BY seq, member_id",
    "ledger_rejections": "SELECT rejection_id, seq, event_id, reason, detail, payload, policy_id "
    "FROM ledger_rejections ORDER BY rejection_id",
    "parked_events": "SELECT event_id, region, member_id, payload, arrival FROM parked_events ORDER BY arrival",
    "member_state": "SELECT * FROM member_state ORDER BY region, member_id",
    "member_year": "SELECT * FROM member_year ORDER BY region, member_id, year",
    "fund_totals": "SELECT * FROM fund_totals ORDER BY region, month, pool",
    "closed_years": "SELECT * FROM closed_years ORDER BY region, year",
    "account_payments": "SELECT * FROM account_payments ORDER BY region, payment_id",
    "outbox": "SELECT position, stream, key, value FROM outbox ORDER BY position",
}


def _tables(database) -> dict[str, list[tuple]]:
    return {name: [tuple(row) for row in fetch(database, query, owner=True)] for name, query in TABLES.items()}


@pytest.fixture
def second_database(pg_server):
    name, db = pg_server.fresh()
    yield db
    pg_server.drop(name)


def _counted_outbox(writes: Writes, stream: str, values: list[str]) -> int | None:
    """Outbox records of `values` on `stream`; the index of how many went in, in what `writes.run` returns."""
    return writes.add(
        f"INSERT INTO outbox (stream, value) SELECT '{stream}', v FROM "
        f"unnest({writes.parameter(values, 'text[]')}) AS v RETURNING position",
        result="count(*)",
    )


def test_small_and_large_batches_leave_the_same_rows(database, second_database, monkeypatch):
    b.fresh()
    early = b.visit("LATE", b.NANJING, on="2023-03-01", items=[b.line("300.00")])  # parked until enrolled
    rest = [line.decode() for line in generated(2_500, 150)] + example_lines("inner-mongolia")
    rest += [b.as_line(early), '{"event_type": "visit.submitted", "oops"', b.as_line(b.enrolled("LATE", b.NANJING))]
    modes: list[bool] = []
    real_run = Writes.run

    async def run(self, raw):
        modes.append(self.large)
        return await real_run(self, raw)

    monkeypatch.setattr(Writes, "run", run)
    for db, batch_size in ((database, 9), (second_database, 2_000)):
        ingest(db, example_lines("ningxia", "weihai", "nanjing"), batch_size=batch_size)
        ingest(db, rest, IM_PARAMETERS, batch_size=batch_size)
        if db is database:
            assert set(modes) == {False}
            modes.clear()
    assert True in modes, "the large batches were written a statement at a time"

    one, other = _tables(database), _tables(second_database)
    for name in TABLES:
        differing = [
            [(n, x, y) for n, (x, y) in enumerate(zip(mine, theirs)) if x != y]
            for mine, theirs in zip(one[name], other[name])
            if mine != theirs
        ][:1]
        assert len(one[name]) == len(other[name]) and not differing, (name, differing)
    for name in TABLES:
        assert one[name], f"nothing in {name} to compare"
    assert len(one["ledger_settlements"]) > 1_000
    assert verify(database).ok and verify(second_database).ok


def test_a_row_may_reference_one_inserted_in_the_same_statement(database):
    """An event references its parameter set, and a rejection its event, all three new to one statement; what
    each write returns comes back in the order asked."""
    import asyncpg

    from ledger.chain import GENESIS
    from ledger.db.event_store import add_events, add_parameters
    from ledger.store import NewEvent, chained

    event = NewEvent("E-1", "visit.submitted", "320100", "M1", datetime(2023, 3, 1, tzinfo=UTC), "{}", "d1", "t")
    (stored,) = chained([event], 0, GENESIS)

    async def scenario():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            async with connection.transaction():
                writes = Writes()
                add_parameters(writes, "d1", "parameters")
                add_events(writes, [stored])
                first = writes.add(
                    f"INSERT INTO ledger_rejections (seq, region, event_id, reason, detail, payload) VALUES "
                    f"({writes.parameter(1, 'bigint')}, '320100', 'E-1', 'r', 'd', '{{}}') RETURNING rejection_id",
                    result="max(rejection_id)",
                )
                second = _counted_outbox(writes, "settlements", ["a", "b", "c"])
                assert not writes.large and (first, second) == (0, 1)
                rejection, published = await writes.run(connection)
            assert published == 3
            assert rejection == await connection.fetchval("SELECT rejection_id FROM ledger_rejections WHERE seq = 1")
            assert await connection.fetchval("SELECT params_digest FROM ledger_events WHERE seq = 1") == "d1"
        finally:
            await connection.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("large", [False, True])
def test_ordered_inserts_keep_the_order_given(database, large):
    import asyncpg

    values = [f"v{n:03d}" for n in range(500, 0, -1)]  # not in any order the table would sort them into

    async def scenario():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            writes = Writes(large=large)
            rows = [("settlements", None, v) for v in values]
            writes.insert("outbox", ("stream", "key", "value"), rows, ordered=True)
            await writes.run(connection)
            return [row[0] for row in await connection.fetch("SELECT value FROM outbox ORDER BY position")]
        finally:
            await connection.close()

    assert asyncio.run(scenario()) == values


def test_batches_are_large_from_the_threshold():
    assert not Writes.sized(writes_module.LARGE - 1).large and Writes.sized(writes_module.LARGE).large


@pytest.mark.parametrize("large", [False, True])
def test_the_outbox_positions_of_a_batch_come_back_with_its_writes(database, large):
    """The last position before a batch's writes (a rolled-back batch's numbers are not in the table, so they do
    not count) and the last one of its records, in the order asked among the other results, however the batch is
    sent."""
    import asyncpg

    from ledger.db.outbox import add_outbox

    async def scenario():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            await connection.execute(
                "INSERT INTO outbox (stream, value) VALUES ('settlements', 'a'), ('rejections', 'b')"
            )
            kept = await connection.fetchval("SELECT max(position) FROM outbox")
            with pytest.raises(RuntimeError):
                async with connection.transaction():
                    await connection.execute("INSERT INTO outbox (stream, value) VALUES ('settlements', 'gone')")
                    raise RuntimeError("rolled back")
            async with connection.transaction():
                writes = Writes(large=large)
                counted = _counted_outbox(writes, "settlements", ["c"])
                rows = [("settlements", f"M{n}", f"r{n}") for n in range(450 if large else 5)]
                before, last = add_outbox(writes, rows)
                results = await writes.run(connection)
            positions = [row[0] for row in await connection.fetch("SELECT position FROM outbox WHERE value LIKE 'r%'")]
            return kept, results[counted], results[before], results[last], positions
        finally:
            await connection.close()

    kept, counted, before, last, positions = asyncio.run(scenario())
    assert counted == 1
    assert before == kept  # read before any write of the batch, whichever way it is sent
    assert last == max(positions) and len(positions) == (450 if large else 5)


@pytest.mark.parametrize("large", [False, True])
def test_a_value_read_before_the_writes_may_take_parameters_of_its_own(database, large):
    """Among writes that have parameters too, and whichever way the batch is sent."""
    import asyncpg

    async def scenario():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            await connection.execute("INSERT INTO outbox (stream, value) VALUES ('settlements', 'a')")
            async with connection.transaction():
                writes = Writes(large=large)
                first = _counted_outbox(writes, "settlements", ["x", "y"])
                found = writes.before(
                    "SELECT string_agg(value, ',' ORDER BY value) FROM outbox WHERE value = ANY({0}) AND stream = {1}",
                    (["a", "x", "z"], "text[]"),
                    ("settlements", "text"),
                )
                second = _counted_outbox(writes, "rejections", ["z"])
                results = await writes.run(connection)
            return results[first], results[found], results[second]
        finally:
            await connection.close()

    assert asyncio.run(scenario()) == (2, "a", 1)  # not x: the batch wrote it


def test_a_large_batches_upserts_in_one_transaction_after_another_replace_rows_and_leave_nothing_staged(database):
    """A replay's last stretch writes batch after batch in one transaction: each batch's upsert takes its own
    staged rows, and only them."""
    import asyncpg

    columns = ("region", "month", "pool", "fund_paid", "settlements", "reversals")
    key = columns[:3]

    def batch(fund_paid: str, months: range) -> list[tuple]:
        return [("150000", date(2024, month, 1), "general", Decimal(fund_paid), 1, 0) for month in months]

    async def scenario():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            async with connection.transaction():
                for rows in (batch("1.00", range(1, 7)), batch("2.00", range(4, 13))):
                    writes = Writes(large=True)
                    writes.upsert("fund_totals", columns, key, rows)
                    await writes.run(connection)
                staged = await connection.fetchval("SELECT count(*) FROM fund_totals_staged")
            found = await connection.fetch("SELECT month, fund_paid FROM fund_totals ORDER BY month")
            after_commit = await connection.fetchval("SELECT count(*) FROM fund_totals_staged")
            return staged, [(month.month, str(paid)) for month, paid in found], after_commit
        finally:
            await connection.close()

    staged, found, after_commit = asyncio.run(scenario())
    assert staged == 0 and after_commit == 0
    assert found == [(m, "1.00") for m in range(1, 4)] + [(m, "2.00") for m in range(4, 13)]


def test_a_large_batch_with_upserts_refuses_to_run_outside_a_transaction(database):
    """Its staged rows would be gone at the end of the COPY's own transaction, before the upsert takes them."""
    import asyncpg

    async def scenario():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            writes = Writes(large=True)
            row = ("150000", date(2024, 1, 1), "general")
            writes.upsert("fund_totals", ("region", "month", "pool"), ("region", "month", "pool"), [row])
            with pytest.raises(RuntimeError, match="transaction"):
                await writes.run(connection)
            return await connection.fetchval("SELECT count(*) FROM fund_totals")
        finally:
            await connection.close()

    assert asyncio.run(scenario()) == 0


def test_the_append_transaction_plans_its_statements_once_and_reads_do_not(database):
    """A batch's statements take their rows as arrays, so their plans do not depend on the values: the append
    transaction plans each once a connection (`recorder.GENERIC_PLANS`); a read outside it keeps the server's
    own choice, on the same pooled connection."""
    from ledger.db.connect import service_pool
    from ledger.db.recorder import PostgresRecorder

    async def scenario() -> tuple[str, str]:
        recorder = PostgresRecorder(await service_pool(database))
        try:
            async with recorder.writing("test", [b.NANJING]) as session:
                inside = await session.raw.fetchval("SHOW plan_cache_mode")
            async with recorder.reading() as session:
                outside = await session.raw.fetchval("SHOW plan_cache_mode")
        finally:
            await recorder.close()
        return inside, outside

    assert asyncio.run(scenario()) == ("force_generic_plan", "auto")


def _member_year_row(member_id: str, year: int, **values: object) -> tuple:
    from projections import member_year

    row = dict.fromkeys(member_year.COLUMNS, Decimal("0.00"))
    row |= {"region": "150000", "member_id": member_id, "year": year, "status": "active", "health_streak": 0}
    row |= {"insurance_type": "employee", "person_type": "retired", "counters": "{}", "bonus_points": Decimal("0.0")}
    return tuple((row | values)[column] for column in member_year.COLUMNS)


# member_year rows holding what the table may: numerics of every scale and exponent, a negative zero, a rounding to
# the points column's one decimal, NaN, an empty chronic pool, text that COPY in text form would escape, counters
# of nested JSON with non-ASCII text.
_AWKWARD_YEARS = [
    _member_year_row("M-1", 2023),
    _member_year_row(
        "M-1",
        2024,
        deductible_paid=Decimal("1E+2"),
        general_fund_paid=Decimal("-0.00"),
        capped_base_used=Decimal("12345678901234567890.123456789"),
        band_position=Decimal("0.000001"),
        chronic_pool=None,
        bonus_points=Decimal("1.25"),
        health_streak=7,
        balance=Decimal("-3.5"),
        counters='{"2024#03":{"deductible":"12.30","general_paid":"1E+1"},"2024#01":{"x":"0"}}',
    ),
    _member_year_row(
        'M "2"\t\\n,\r\n',
        2024,
        status="终止",
        chronic_fund_paid=Decimal("NaN"),
        bonus_points=Decimal("-99.95"),
        counters='{"2024#12":{"说明":"a\\"b\\\\c\\u00e9"}}',
    ),
]


@pytest.mark.parametrize("parts", [False, True], ids=["a document a write", "a document a row"])
@pytest.mark.parametrize("large", [False, True], ids=["one statement", "a statement at a time"])
def test_member_year_rows_sent_as_a_document_are_the_rows_copy_stores(database, monkeypatch, large, parts):
    """The rows as one JSON document, each value cast from its text by PostgreSQL, are stored as the same values
    COPY stores of the Python objects (asyncpg's binary encoding of each), inserted or upserted over rows there;
    and so when more rows are written than a document holds (a jsonb value holds less than 256 MB), in further
    documents."""
    import asyncpg

    from projections import member_year

    documents: list[int] = []
    made = writes_module.document
    monkeypatch.setattr(writes_module, "document", lambda rows: documents.append(len(rows)) or made(rows))
    if parts:
        monkeypatch.setattr(writes_module, "DOCUMENT_ROWS", 1)

    columns, key = member_year.COLUMNS, ("region", "member_id", "year")
    stale = [_member_year_row(row[1], row[2], balance=Decimal("9.99"), counters='{"old":1}') for row in _AWKWARD_YEARS]

    async def scenario() -> tuple[list[str], list[str]]:
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            await connection.execute("CREATE TEMPORARY TABLE copied_member_year (LIKE member_year)")
            await connection.copy_records_to_table("copied_member_year", records=_AWKWARD_YEARS, columns=columns)
            async with connection.transaction():
                writes = Writes(large=large)
                writes.insert("member_year", columns, _AWKWARD_YEARS[:1], document=True)
                writes.insert("member_year", columns, stale[1:], document=True)
                await writes.run(connection)
                writes = Writes(large=large)
                writes.upsert("member_year", columns, key, _AWKWARD_YEARS[1:], document=True)
                await writes.run(connection)
            found = []
            for table in ("copied_member_year", "member_year"):
                rows = await connection.fetch(f"SELECT t::text FROM {table} t ORDER BY member_id, year")  # noqa: S608
                found.append([row[0] for row in rows])
            return found[0], found[1]
        finally:
            await connection.close()

    copied, sent = asyncio.run(scenario())
    assert len(copied) == len(_AWKWARD_YEARS) and any(",1.3," in row for row in copied)  # the points rounded
    assert any(",NaN," in row and ",-100.0," in row for row in copied)
    assert sent == copied
    assert documents == ([1] * 5 if parts else [1, 2, 2])
