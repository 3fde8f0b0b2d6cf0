"""The ledger keeps each record as the text medledger wrote (revision 0016): `replay --verify` finds a re-derived
record equal by its bytes, and asks nothing more of the server; a ledger whose records were kept as jsonb before
upgrades, keeps their values, reads as before and verifies, each record the server's text of its re-derived
value."""

from __future__ import annotations

import asyncio
import importlib

import asyncpg
import orjson
import pytest

from ledger.codec import dumps
from ledger.db import migrate
from ledger.db.audit import PostgresAudit
from ledger.db.report_reads import PostgresReportReads
from ledger.db.verification import JSON_TEXT
from ledger.verify_rows import DERIVED, jsonb_text
from tests.ledger.helpers import (
    example_lines,
    execute,
    fetch,
    ingest,
    plain,
    records_as,
    unguarded,
    unreferenced,
    verify,
)

MOVEMENTS = next(spec for spec in DERIVED if spec.table == "ledger_movements")
MIGRATION = importlib.import_module("ledger.db.migrations.versions.0016_records_as_written")


def _records(db) -> dict[tuple[str, str], list[str]]:
    """Every record of the ledger's record columns, as stored, by (table, column), in a fixed order."""
    order = {
        "ledger_settlements": "settlement_id",
        "ledger_movements": "movement_id",
        "ledger_incentives": "seq, member_id",
    }
    return {
        (table, column): [row[0] for row in fetch(db, f"SELECT {column} FROM {table} ORDER BY {order[table]}")]
        for table, column in sorted(JSON_TEXT)
    }


class _Asked:
    """What verify asks of the server beyond the stored rows: the settlements it keeps aside, which compared
    unequal (`PostgresAudit.compared`), and the rows whose text it asks the server to read as its own
    (`PostgresAudit.in_server_text`), by table."""

    def __init__(self, monkeypatch) -> None:
        self.unequal: list[str] = []
        self.kept_aside: list[str] = []
        self.server_text: dict[str, int] = {}
        compared, in_server_text = PostgresAudit.compared, PostgresAudit.in_server_text

        async def kept(audit, through, unequal, rederived, uncompared):
            self.unequal += [key for key, _ in unequal]
            self.kept_aside += [row[0] for row in rederived]
            return await compared(audit, through, unequal, rederived, uncompared)

        async def asked(audit, spec, pairs):
            self.server_text[spec.table] = self.server_text.get(spec.table, 0) + len(pairs)
            return await in_server_text(audit, spec, pairs)

        monkeypatch.setattr(PostgresAudit, "compared", kept)
        monkeypatch.setattr(PostgresAudit, "in_server_text", asked)


def _reads(db) -> dict:
    """What the reports read from the records: the fund's month by facility level and by facility, and a
    settlement's trace, for every month with settlements."""

    async def run() -> dict:
        connection = await asyncpg.connect(plain(db.owner_url))
        try:
            reads = PostgresReportReads(connection)
            months = await connection.fetch(
                "SELECT DISTINCT region, date_trunc('month', visit_date)::date FROM ledger_settlements ORDER BY 1, 2"
            )
            found: dict = {}
            for region, first in months:
                found[(region, first, "level")] = await reads.month_by_level(region, first)
                found[(region, first, "facility")] = await reads.month_by_facility(region, first)
            settlement_id = await connection.fetchval("SELECT min(settlement_id) FROM ledger_settlements")
            trace = await reads.settlement_trace(settlement_id)
            found["trace"] = (trace["record"], trace["deltas"])
            return found
        finally:
            await connection.close()

    return asyncio.run(run())


def test_records_are_kept_as_written_and_verify_finds_each_equal_by_its_bytes(database, monkeypatch):
    ingest(database, example_lines("nanjing", "weihai", "inner-mongolia"))
    for (table, column), records in _records(database).items():
        if table != "ledger_incentives":
            assert records, f"{table}.{column} is empty"
        # medledger's own text (compact, keys in its order), not the server's
        assert all(dumps(orjson.loads(record)) == record for record in records), (table, column)
    asked = _Asked(monkeypatch)
    report = verify(database)
    assert report.ok, report.differences[:3]
    # each equal by its bytes: no settlement kept aside, and no text asked of the server
    assert (asked.unequal, asked.kept_aside, asked.server_text) == ([], [], {})


def test_a_ledger_kept_as_jsonb_upgrades_reads_as_before_and_verifies(database, monkeypatch):
    ingest(database, example_lines("nanjing", "weihai", "inner-mongolia"))
    written, reads = _records(database), _reads(database)
    assert any(row[0]["total_amount"] for key, row in reads.items() if key != "trace" and row)
    # as the release before kept them, at the revision before
    for statement in records_as("jsonb"):
        execute(database, statement, owner=True)
    execute(database, "UPDATE alembic_version SET version_num = '0015'", owner=True)

    migrate.upgrade(database.owner_url)

    assert fetch(database, "SELECT version_num FROM alembic_version", owner=True)[0][0] == migrate.HEAD
    kinds = fetch(
        database,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name IN ('record', 'deltas') AND table_name = ANY($1::text[])",
        sorted(MIGRATION.RECORDS),
    )
    assert {(t, c) for t, c, _ in kinds} == JSON_TEXT and {kind for _, _, kind in kinds} == {"text"}
    upgraded = _records(database)
    assert upgraded.keys() == written.keys()
    for key, records in upgraded.items():  # the server's text of each value: the same values, other bytes
        assert [orjson.loads(r) for r in records] == [orjson.loads(r) for r in written[key]], key
    settlements = upgraded[("ledger_settlements", "record")]
    assert all(r != w for r, w in zip(settlements, written[("ledger_settlements", "record")], strict=True))
    assert _reads(database) == reads

    asked = _Asked(monkeypatch)
    report = verify(database)
    assert report.ok, report.differences[:3]
    # each unequal by its bytes, and the server's text of its re-derived value: asked of the server, every row
    # with a record, and none kept aside
    assert asked.server_text == {
        table: len(upgraded[(table, "record")]) for table, _ in JSON_TEXT if upgraded[(table, "record")]
    }
    assert (asked.unequal, asked.kept_aside) == ([], [])

    # and a changed value among them is still found
    settlement_id = fetch(database, "SELECT min(settlement_id) FROM ledger_settlements")[0][0]
    unguarded(
        database,
        "ledger_settlements",
        "UPDATE ledger_settlements SET record = jsonb_set(record::jsonb, '{cash_paid}', '\"0.01\"')::text "
        "WHERE settlement_id = $1",
        settlement_id,
    )
    asked = _Asked(monkeypatch)
    report = verify(database)
    assert [(d.what, d.detail.split(":")[0]) for d in report.differences] == [
        (f"ledger_settlements settlement_id={settlement_id}", "record.cash_paid")
    ]
    # the one settlement kept aside, re-derived, where a visit is looked up (a reversal of it, say)
    assert asked.unequal == asked.kept_aside == [settlement_id]


@pytest.mark.parametrize(("table", "column"), sorted(JSON_TEXT))
def test_a_record_that_is_no_longer_json_is_reported_as_it_is_stored(database, table, column):
    ingest(database, example_lines("inner-mongolia", "weihai"))
    (count,) = fetch(database, f"SELECT count(*) FROM {table}")[0]
    assert count, f"{table} is empty"
    first = f"(SELECT region, ctid FROM {table} ORDER BY region, ctid LIMIT 1)"  # one row of one partition
    unguarded(database, table, f"UPDATE {table} SET {column} = {column} || '~' WHERE (region, ctid) = {first}")
    report = verify(database)
    assert not report.ok
    assert any(d.detail.startswith(f"{column}: ledger '") for d in report.differences), [
        (d.what, d.detail[:120]) for d in report.differences
    ]


# Texts that parse to the value a record was written with, or to one a loose comparison takes for it, but are not
# the text written (nor, for a record kept as jsonb before 0016, the server's text of its value): each is named.
# A key given twice is read by every parser medledger uses as its last value; a reader taking the first would see
# the forged one. (pattern a row must hold, SQL of the forged text from `RECORD`), as written and as kept as jsonb.
FORGERIES = {
    "a key given twice, the forged value first": (
        ("", '\'{"cash_paid":"0.01",\' || substr(RECORD, 2)'),
        ("", '\'{"cash_paid": "0.01", \' || substr(RECORD, 2)'),
    ),
    "a space before it": (("", "' ' || RECORD"), ("", "' ' || RECORD")),
    "a key spelled with an escape": (
        ('"region":', "replace(RECORD, '\"region\":', '\"\\u0072egion\":')"),
        ('"region": ', "replace(RECORD, '\"region\": ', '\"\\u0072egion\": ')"),
    ),
    "true for 1": (
        ('"facility_level":1,', "replace(RECORD, '\"facility_level\":1,', '\"facility_level\":true,')"),
        ('"facility_level": 1,', "replace(RECORD, '\"facility_level\": 1,', '\"facility_level\": true,')"),
    ),
}
KEYS = {"ledger_settlements": "settlement_id", "ledger_movements": "movement_id"}  # a movement holds no number


CASES = [(t, f) for t in sorted(KEYS) for f in sorted(FORGERIES) if (t, f) != ("ledger_movements", "true for 1")]


@pytest.mark.parametrize("legacy", [False, True], ids=["as written", "kept as jsonb before"])
@pytest.mark.parametrize(("table", "forgery"), CASES)
def test_a_record_whose_text_is_not_the_one_written_is_named_though_it_parses_to_its_value(
    database, table, forgery, legacy
):
    ingest(database, example_lines("nanjing", "weihai"))
    if legacy:  # the server's text of each jsonb value, as 0016 leaves the rows written before it
        for statement in records_as("jsonb", [table]) + records_as("text", [table]):
            execute(database, statement, owner=True)
    pattern, forged = FORGERIES[forgery][legacy]
    key = KEYS[table]
    (row_key,) = fetch(database, f"SELECT min({key}) FROM {table} WHERE strpos(record, $1) > 0", pattern)[0]
    assert row_key is not None and verify(database).ok
    unguarded(
        database, table, f"UPDATE {table} SET record = {forged.replace('RECORD', 'record')} WHERE {key} = $1", row_key
    )
    (text,) = fetch(database, f"SELECT record FROM {table} WHERE {key} = $1", row_key)[0]
    assert orjson.loads(text) == orjson.loads(text.replace("true,", "1,"))  # it still parses, to a value taken for it

    report = verify(database)

    assert [d.what for d in report.differences] == [f"{table} {key}={row_key}"], report.differences
    assert report.differences[0].detail.startswith("record"), report.differences[0].detail


def test_jsonb_text_is_the_text_postgresql_gives_a_jsonb_value(database):
    values = [
        {"b": 1, "aa": [True, False, None], "a": {}, "é": [], "ab": "x"},  # keys by their length in bytes
        'quote " backslash \\ slash / \b \f \n \r \t \x01 \x1f \x7f',
        "中文 and emoji 🧾 kept as they are",
        [-12345678901234567, 0, [[[]]], {"k": {"k": "v"}}],
        {"é": 1, "z": 2, "zz": 3, "ée": 4, "e": 5},
    ]
    for value in values:
        (server,) = fetch(database, "SELECT $1::jsonb::text", orjson.dumps(value).decode())[0]
        assert jsonb_text(value) == server, value
    assert jsonb_text({"amount": 1.5}) is None  # jsonb keeps a number's digits, which a float does not


@pytest.mark.parametrize("table", sorted(KEYS))
def test_a_record_nested_deeper_than_any_is_reported_as_its_text(database, table):
    """orjson parses up to 1,024 levels; shown as a parsed value, such a record made repr() recurse past Python's
    limit and stopped the verify."""
    ingest(database, example_lines("weihai"))
    key = KEYS[table]
    (row_key,) = fetch(database, f"SELECT min({key}) FROM {table}")[0]
    deep = "repeat('[', 1000) || repeat(']', 1000)"
    unguarded(database, table, f"UPDATE {table} SET record = {deep} WHERE {key} = $1", row_key)
    report = verify(database)
    assert [(d.what, d.detail[:18]) for d in report.differences] == [(f"{table} {key}={row_key}", "record: ledger '[[")]


def test_a_record_forged_beside_a_decoy_of_the_server_s_text_is_named(database):
    """A year close's movement read for the members of a chunk alone, its record's text forged, and beside it, at
    the same position and under the same id, a row of no member holding the server's text of the genuine value:
    the text asked of the server is the one compared, sent back, so the decoy stands for nothing."""
    ingest(database, example_lines("nanjing"))
    ((movement_id, record),) = fetch(
        database,
        "SELECT m.movement_id, m.record FROM ledger_movements m JOIN ledger_events e ON e.seq = m.seq "
        "AND e.region = m.region WHERE e.event_type = 'period.year_closed' AND m.region = '320100' "
        "ORDER BY m.movement_id LIMIT 1",
    )
    forged = record.replace('"beneficiary_id":null', '"beneficiary_id":"FORGED"')
    assert forged != record
    columns = ", ".join(MOVEMENTS.columns)
    decoy = ", ".join(
        {"region": "'ZZ'", "member_id": "'x'", "record": "t.record::jsonb::text"}.get(c, f"t.{c}")
        for c in MOVEMENTS.columns
    )

    unreferenced(
        database,
        (
            f"INSERT INTO ledger_movements ({columns}) SELECT {decoy} FROM ledger_movements t WHERE movement_id = $1",
            movement_id,
        ),
        ("UPDATE ledger_movements SET record = $2 WHERE movement_id = $1 AND region = '320100'", movement_id, forged),
    )
    report = verify(database)
    assert [(d.what, d.detail) for d in report.differences] == [
        (f"ledger_movements movement_id={movement_id}", "record.beneficiary_id: ledger 'FORGED' vs replay None")
    ]
