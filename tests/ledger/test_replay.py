"""Replay walks the ledger through the same pipeline: verify, rebuild, what-if."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from sqlalchemy import Date, DateTime, Integer, Numeric, Text
from sqlalchemy.dialects.postgresql import JSONB

from bench.generate import generate
from ledger.adoption import ADOPTED
from ledger.db.server import maintenance
from ledger.db.tables import metadata
from ledger.db.verification import JSON_TEXT
from ledger.replay import Replayer
from ledger.verify_rows import DERIVED, NOT_DERIVED
from tests import builders as b
from tests.ledger.helpers import IM_PARAMETERS, example_lines, fetch, ingest, verify

PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")


def _snapshot(db):
    return {table: sorted(tuple(r) for r in fetch(db, f"SELECT * FROM {table}")) for table in PROJECTIONS}


def _mixed(database):
    """Every region's examples, a generated stream with year closes, family payments and a reversal, parked
    events, and a change of parameter set half way."""
    ingest(database, example_lines("ningxia", "weihai", "nanjing"), batch_size=13)
    generated = [json.dumps(e) for e in generate(3_000, seed=11)]
    ingest(database, generated[:1500], IM_PARAMETERS, batch_size=97)
    b.fresh()
    late = [
        b.visit("LATE", b.WEIHAI, on="2024-03-01", items=[b.line("900.00")], level=1, grade=None),
        b.aid_authorized("LATE", b.WEIHAI, "LATE-SPOUSE", relation="spouse", on="2024-03-02"),
        b.enrolled("LATE", b.WEIHAI, on="2023-01-01"),
        b.contribution("LATE", b.WEIHAI, "2024-03", "8000.00"),
        b.enrolled("LATE-SPOUSE", b.WEIHAI, on="2023-01-01", person_type="resident_tier1"),
        b.visit(
            "LATE-SPOUSE",
            b.WEIHAI,
            on="2024-03-05",
            items=[b.line("400.00")],
            level=1,
            grade=None,
            account=True,
            payer="LATE",
        ),
    ]
    late.append(b.reversed_visit("LATE", b.WEIHAI, late[0]["visit_id"], on="2024-03-06"))
    ingest(database, [b.as_line(e) for e in late], batch_size=2)
    ingest(database, generated[1500:] + example_lines("inner-mongolia"), IM_PARAMETERS, batch_size=211)


def test_verify_passes_on_a_mixed_ledger_whatever_the_batch_sizes(database):
    _mixed(database)
    assert fetch(database, "SELECT count(DISTINCT params_digest) FROM ledger_events")[0][0] == 2
    assert fetch(database, "SELECT count(*) FROM ledger_incentives")[0][0] > 0
    assert fetch(database, "SELECT count(*) FROM ledger_settlements WHERE reverses IS NOT NULL")[0][0] > 0
    for batch_size in (1_000, 57):
        report = verify(database, batch_size=batch_size)
        assert report.ok, (report.chain_breaks, report.differences[:5], report.projection_differences)
        assert report.events == fetch(database, "SELECT count(*) FROM ledger_events")[0][0]


def test_projections_dropped_and_rebuilt_from_the_ledger_come_back_the_same(database):
    _mixed(database)
    before = _snapshot(database)
    asyncio.run(Replayer(maintenance(database), batch_size=333).rebuild())
    assert _snapshot(database) == before
    assert verify(database).ok


def test_a_what_if_reports_the_fund_impact_and_leaves_the_ledger_alone(database):
    ingest(database, example_lines("nanjing"))
    head = fetch(database, "SELECT max(seq), count(*) FROM ledger_settlements")[0]
    what_if = '[policy."320100-2023".band_ratios.in_service]\nother = ["0.50", "0.70", "0.75"]\n'
    report = asyncio.run(Replayer(database).compare(what_if))
    changed = {key: values for key, values in report.fund_impact.items() if values[0] != values[1]}
    assert changed and all(region == "320100" and month.year == 2023 for region, _, month in changed)
    assert all(after > before for before, after in changed.values())  # 40% -> 50% in the first band
    assert report.changed_settlements > 0
    assert fetch(database, "SELECT max(seq), count(*) FROM ledger_settlements")[0] == head
    assert verify(database).ok


def test_verify_split_by_region_over_processes_agrees_and_catches_a_forgery(database):
    from ledger.replay import verify_in_parallel
    from tests.ledger.helpers import execute

    _mixed(database)
    counts = {r[0]: r[1] for r in fetch(database, "SELECT region, count(*) FROM ledger_events GROUP BY region")}
    told: list[tuple[int, int]] = []
    report = verify_in_parallel(database, 50, 2, counts, progress=lambda done, total: told.append((done, total)))
    total = sum(counts.values())
    assert report.ok and report.events == total
    # what both workers replayed, batch by batch, up to every event
    assert len(told) > 2 and told[-1] == (total, total) and all(t == total for _, t in told)
    assert [done for done, _ in told] == sorted(done for done, _ in told) and told[0][0] < total
    execute(database, "ALTER TABLE ledger_settlements DISABLE TRIGGER USER", owner=True)
    execute(
        database,
        "UPDATE ledger_settlements SET record = jsonb_set(record::jsonb, '{fund_paid}', '\"1.00\"')::text "
        "WHERE settlement_id = (SELECT max(settlement_id) FROM ledger_settlements "
        "WHERE region = '320100')",
        owner=True,
    )
    execute(database, "ALTER TABLE ledger_settlements ENABLE TRIGGER USER", owner=True)
    broken = verify_in_parallel(database, 500, 2, counts)
    assert not broken.ok and not broken.chain_breaks and broken.difference_count == 1


def _both_ways(database):
    """verify in this process, and split by region over two worker processes."""
    from ledger.replay import verify_in_parallel

    counts = {r[0]: r[1] for r in fetch(database, "SELECT region, count(*) FROM ledger_events GROUP BY region")}
    return verify(database, batch_size=50), verify_in_parallel(database, 50, 2, counts)


def test_verify_catches_a_changed_projection_row_and_rebuild_restores_it(database):
    from tests.ledger.helpers import execute

    ingest(database, example_lines("nanjing", "weihai"))
    before = _snapshot(database)
    execute(
        database,
        "UPDATE fund_totals SET fund_paid = fund_paid + 1 "
        "WHERE (region, month, pool) = (SELECT region, month, pool FROM fund_totals ORDER BY 1, 2, 3 LIMIT 1)",
    )
    for report in _both_ways(database):
        assert not report.ok and not report.difference_count
        assert report.projection_differences == dict.fromkeys(PROJECTIONS, 0) | {"fund_totals": 2}
    asyncio.run(Replayer(maintenance(database)).rebuild())
    assert _snapshot(database) == before
    assert all(report.ok for report in _both_ways(database))


def test_verify_catches_projection_rows_of_a_region_without_events(database):
    from tests.ledger.helpers import execute

    ingest(database, example_lines("nanjing"))
    execute(
        database,
        "INSERT INTO fund_totals (region, month, pool, fund_paid, settlements, reversals) "
        "VALUES ('370100', '2023-05-01', 'general', 1000.00, 1, 0)",
    )
    for report in _both_ways(database):
        assert not report.ok and report.projection_differences["fund_totals"] == 1


def test_verify_catches_a_ledger_row_added_beside_a_year_close(database):
    """A year close is compared a chunk of its region's members at a time; a row under its position for someone
    who is no member there is met by no comparison, and still counted."""
    from tests.ledger.helpers import execute

    ingest(database, example_lines("nanjing"))
    (close,) = fetch(database, "SELECT seq FROM ledger_events WHERE event_type = 'period.year_closed' LIMIT 1")[0]
    execute(
        database,
        "INSERT INTO ledger_incentives (seq, region, member_id, year, record) "
        "VALUES ($1, '320100', 'NOBODY', 2023, '{\"member_id\": \"NOBODY\"}')",
        close,
    )
    for report in _both_ways(database):
        assert not report.ok and report.difference_count == 1
        (difference,) = report.differences
        assert difference.what == "ledger_incentives" and "1 incentive row(s)" in difference.detail


def test_a_later_release_with_other_defaults_still_verifies_what_was_recorded_before_it(database, monkeypatch):
    from policies import nanjing
    from policies.parameters import override

    ingest(database, example_lines("nanjing"))
    # A release that corrects a default the examples settle with (the first band of "other" facilities).
    later = tuple(
        (
            policy_id,
            start,
            end,
            override(defaults, {"band_ratios": {"in_service": {"other": ["0.50", "0.70", "0.75"]}}}, policy_id),
        )
        for policy_id, start, end, defaults in nanjing.VERSIONS
    )
    monkeypatch.setattr(nanjing, "VERSIONS", later)
    report = verify(database)
    assert report.ok, (report.differences[:5], report.projection_differences)
    # Replayed with the values recorded, not the new defaults: a what-if changing nothing moves no settlement,
    assert asyncio.run(Replayer(database).compare("")).changed_settlements == 0
    # while the correction itself, asked for, would have moved some.
    what_if = '[policy."320100-2023".band_ratios.in_service]\nother = ["0.50", "0.70", "0.75"]\n'
    assert asyncio.run(Replayer(database).compare(what_if)).changed_settlements > 0
    # Events recorded under the later release carry its values, under a parameter set of their own.
    b.fresh()
    member = b.enrolled("NJ-LATER", b.NANJING, on="2023-01-01")
    ingest(database, [b.as_line(member), b.as_line(b.visit("NJ-LATER", b.NANJING, on="2023-05-01"))])
    assert fetch(database, "SELECT count(DISTINCT params_digest) FROM ledger_events")[0][0] == 2
    assert verify(database).ok


# -- every stored column of every derived row ------------------------------------------------------------------------

# Columns other checks own: an event's position, bytes and hashes are the chain's (test_append_only), its parameter
# set the adoptions' (test_adoption); where it came from and when it was recorded derive from nothing.
# A derived row's region is its event's: the reference (seq, region) to its event refuses any other, and an
# event's region can change only with no row referring to it (test_partitions).
NOT_RE_DERIVED = {
    "ledger_events": ("seq", "payload", "params_digest", "prev_hash", "hash", "source", "recorded_at", "region"),
    **{table: ("region",) for table in ("ledger_settlements", "ledger_movements", "ledger_incentives")},
    "ledger_rejections": ("region",),
}
# Of each table, the rows a column is changed in: rows a replayed event derives.
CANDIDATES = {
    "ledger_events": f"event_type <> '{ADOPTED}'",
    # a row whose seq is moved on by one must not land on another refusal's
    "ledger_rejections": "seq IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM ledger_rejections n WHERE n.seq = ledger_rejections.seq + 1)",
    "parked_events": "event_id IN (SELECT event_id FROM ledger_events)",  # released into the ledger since
}


def _tampered_columns() -> list[tuple[str, str]]:
    """Every column of every table replay re-derives, from the table definitions: a column added later is
    changed here too, and must be compared (or said to derive from nothing in NOT_DERIVED)."""
    tables = [spec.table for spec in DERIVED] + ["ledger_events", "parked_events", *PROJECTIONS]
    skipped = {t: (*NOT_DERIVED.get(t, ()), *NOT_RE_DERIVED.get(t, ())) for t in NOT_DERIVED | NOT_RE_DERIVED}
    return [
        (table, column.name)
        for table in tables
        for column in metadata.tables[table].columns
        if column.name not in skipped.get(table, ())
    ]


TAMPERED = _tampered_columns()


def _changed(column) -> str:
    """SQL giving the column another value of its type."""
    name, kind = column.name, column.type
    if (column.table.name, name) in JSON_TEXT:  # still JSON: a value the record's parse differs in
        return f"({_changed_json(f'{name}::jsonb')})::text"
    if isinstance(kind, JSONB):
        return _changed_json(name)
    if isinstance(kind, Text):
        return f"coalesce({name}, '') || '~'"
    if isinstance(kind, (Numeric, Integer)):  # BigInteger is an Integer
        return f"coalesce({name}, 0) + 1"
    if isinstance(kind, Date):
        return f"{name} + 1"
    if isinstance(kind, DateTime):
        return f"{name} + interval '1 second'"
    raise AssertionError(f"no change written for {name} of type {kind}")


def _changed_json(value: str) -> str:
    return f"CASE jsonb_typeof({value}) WHEN 'object' THEN {value} || '{{\"tampered\": 1}}' ELSE {value} || '[1]' END"


async def _tamper_each_column(db) -> dict[tuple[str, str], dict]:
    """One column changed in one row, a row of its own for each column of each table: the row's key and
    position before the change, by (table, column)."""
    connection = await asyncpg.connect(db.owner_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    changed: dict[tuple[str, str], dict] = {}
    try:
        for table in dict.fromkeys(table for table, _ in TAMPERED):
            definition = metadata.tables[table]
            key = [c.name for c in definition.primary_key.columns] or ["rejection_id"]
            columns = [column for name, column in definition.columns.items() if (table, name) in TAMPERED]
            nulls = ", ".join(f"{c.name} IS NULL" for c in columns)
            rows = await connection.fetch(
                f"SELECT ctid, *, ARRAY[{nulls}] AS nulls FROM {table} WHERE {CANDIDATES.get(table, 'true')} "
                f"ORDER BY {', '.join(key)} LIMIT 1000"
            )
            assert len(rows) >= len(columns), f"{table} has too few rows to change each column in one of them"
            used: set = set()
            await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for n, column in enumerate(columns):
                unused = [row for row in rows if row["ctid"] not in used]
                row = next((row for row in unused if not row["nulls"][n]), unused[0])
                used.add(row["ctid"])
                await connection.execute(
                    f"UPDATE {table} SET {column.name} = {_changed(column)} WHERE ctid = $1", row["ctid"]
                )
                changed[(table, column.name)] = {c: row[c] for c in row.keys() if c not in ("ctid", "nulls")}
            await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await connection.close()
    return changed


@pytest.fixture(scope="module")
def tampered(pg_server):
    """A mixed ledger with one column of one row changed for each column of each table, verified once."""
    name, db = pg_server.fresh()
    try:
        _mixed(db)  # its event ids go on from here
        early = [b.visit(f"EARLY-{n}", b.WEIHAI, on="2024-04-01", items=[b.line("300.00")], level=1) for n in range(5)]
        enrolments = [b.enrolled(f"EARLY-{n}", b.WEIHAI, on="2023-01-01") for n in range(5)]
        ingest(db, [b.as_line(e) for e in early + enrolments], batch_size=5)  # parked, then released
        assert verify(db, batch_size=500).ok
        changed = asyncio.run(_tamper_each_column(db))
        replayer = Replayer(db, batch_size=500)
        replayer.shown_rows = 1_000
        report = asyncio.run(replayer.verify())
        yield changed, report
    finally:
        pg_server.drop(name)


def _named(row: dict, names) -> str:
    return ", ".join(f"{name}={row[name]}" for name in names)


@pytest.mark.parametrize("table, column", TAMPERED, ids=[f"{t}.{c}" for t, c in TAMPERED])
def test_verify_reports_a_changed_column_of_any_table_with_its_key_and_column(tampered, table, column):
    changed, report = tampered
    row = changed[(table, column)]
    key = [c.name for c in metadata.tables[table].primary_key.columns]
    if table in PROJECTIONS:
        found = {d.what: d.detail for d in report.projection_rows}
        what = f"{table} {_named(row, key)}"
        assert what in found, (what, sorted(found)[:10])
        expected = "re-derived but not in the projection" if column in key else f"{column}: live "
        assert expected in found[what]
        return
    found = [(d.seq, d.what, d.detail) for d in report.differences]
    if table == "ledger_events":
        assert any(
            seq == row["seq"] and what == table and f"{column}: ledger " in detail for seq, what, detail in found
        )
    elif table == "parked_events":
        assert any(
            what.startswith("parked_events event_id=")
            and row["event_id"] in what + detail
            and f"{column}: parked " in detail
            for _, what, detail in found
        ), found
    else:
        (spec,) = (spec for spec in DERIVED if spec.table == table)
        what = spec.describe(tuple(row[c] for c in spec.columns))
        mine = [detail for seq, named, detail in found if (seq, named) == (row["seq"], what)]
        if column in spec.key or column == "seq":  # the row is no longer where it is derived
            assert "re-derived but not in the ledger" in mine or any(d.startswith("seq: ") for d in mine), found
        else:
            assert any(f"{column}: " in d or f"{column}." in d for d in mine), (what, mine)
    assert not report.ok


def test_the_verify_command_names_a_settlement_whose_fund_paid_was_changed_beside_its_record(database, monkeypatch):
    from typer.testing import CliRunner

    from ledger.cli import app
    from tests.ledger.helpers import execute

    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    ingest(database, example_lines("nanjing"))
    ((settlement_id, paid),) = fetch(
        database, "SELECT settlement_id, fund_paid FROM ledger_settlements ORDER BY settlement_id LIMIT 1"
    )
    execute(database, "ALTER TABLE ledger_settlements DISABLE TRIGGER USER", owner=True)
    execute(
        database,
        "UPDATE ledger_settlements SET fund_paid = fund_paid + 1 WHERE settlement_id = $1",
        settlement_id,
        owner=True,
    )
    execute(database, "ALTER TABLE ledger_settlements ENABLE TRIGGER USER", owner=True)
    result = CliRunner().invoke(app, ["replay", "--verify"], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert "re-derived records: 1 difference(s)" in result.stdout
    expected = f"ledger_settlements settlement_id={settlement_id}: fund_paid: ledger Decimal('{paid + 1}')"
    assert expected in result.stdout and f"vs replay Decimal('{paid}')" in result.stdout


def test_verify_checks_since_when_a_refused_parked_event_waited_against_its_parked_row(database):
    from datetime import UTC, datetime, timedelta

    from tests.ledger.helpers import execute, sweep

    parked_at = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    b.fresh()
    visit = b.visit("LATE", b.NANJING, on="2023-03-20", items=[b.line("600.00")])
    ingest(database, [b.as_line(visit)], now=parked_at)
    assert sweep(database, now=parked_at + timedelta(days=8), park_ttl=timedelta(days=7))[0].expired == 1
    assert verify(database).ok  # the refusal says since when it waited, which the ledger alone does not
    execute(database, "ALTER TABLE parked_events DISABLE TRIGGER USER", owner=True)
    execute(database, "UPDATE parked_events SET parked_at = parked_at - interval '1 day'", owner=True)
    execute(database, "ALTER TABLE parked_events ENABLE TRIGGER USER", owner=True)
    report = verify(database)
    (difference,) = report.differences
    assert difference.what == "ledger_rejections" and difference.detail.startswith("detail: ledger 'parked since")


def test_verify_split_by_region_names_a_changed_column_and_a_changed_projection_row(database):
    from tests.ledger.helpers import execute

    ingest(database, example_lines("nanjing", "weihai"))
    ((settlement_id,),) = fetch(database, "SELECT max(settlement_id) FROM ledger_settlements WHERE region = '371000'")
    execute(database, "ALTER TABLE ledger_settlements DISABLE TRIGGER USER", owner=True)
    execute(
        database,
        "UPDATE ledger_settlements SET policy_id = 'forged' WHERE settlement_id = $1",
        settlement_id,
        owner=True,
    )
    execute(database, "ALTER TABLE ledger_settlements ENABLE TRIGGER USER", owner=True)
    execute(database, "UPDATE closed_years SET seq = seq + 1 WHERE region = '320100'", owner=True)
    for report in _both_ways(database):
        (difference,) = report.differences
        assert difference.what == f"ledger_settlements settlement_id={settlement_id}"
        assert difference.detail.startswith("policy_id: ledger 'forged' vs replay ")
        assert [row.what.split()[0] for row in report.projection_rows] == ["closed_years"]
        assert "seq: live " in report.projection_rows[0].detail
