"""The database itself keeps the ledger append-only, and the chain catches what a superuser forges anyway."""

from __future__ import annotations

import asyncpg
import pytest

from tests import builders as b
from tests.ledger.helpers import example_lines, execute, fetch, ingest, verify

A_COLUMN = {
    "ledger_events": "source",
    "ledger_settlements": "record",
    "ledger_movements": "record",
    "ledger_incentives": "record",
    "ledger_rejections": "reason",
    "parameter_sets": "content",
    "parked_events": "payload",
}
LEDGER_TABLES = tuple(A_COLUMN)


@pytest.fixture
def filled(database):
    b.fresh()
    waits = b.visit("NOT-YET", b.NANJING, on="2023-05-01")
    ingest(database, example_lines("nanjing") + ["not an event", b.as_line(waits)])
    for table in LEDGER_TABLES:
        assert fetch(database, f"SELECT count(*) FROM {table}")[0][0] > 0, table
    return database


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_even_the_owner_cannot_update_delete_or_truncate(filled, table):
    column = A_COLUMN[table]
    for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE"):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            execute(filled, statement, owner=True)


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_the_service_role_may_only_insert_and_select(filled, table):
    privileges = fetch(
        filled,
        "SELECT privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = 'medledger_app' AND table_name = $1",
        table,
        owner=True,
    )
    assert {row[0] for row in privileges} == {"INSERT", "SELECT"}
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        execute(filled, f"DELETE FROM {table}")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        execute(filled, f"ALTER TABLE {table} DISABLE TRIGGER USER")


def test_the_service_connects_as_the_restricted_role(filled):
    assert fetch(filled, "SELECT current_user")[0][0] == "medledger_app"


def test_a_row_forged_with_the_triggers_disabled_is_caught_by_verification(filled):
    assert verify(filled).ok
    execute(filled, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
    execute(
        filled,
        'UPDATE ledger_events SET payload = replace(payload, \'"amount":"\', \'"amount":"1\') '
        "WHERE seq = (SELECT min(seq) FROM ledger_events WHERE event_type = 'visit.submitted')",
        owner=True,
    )
    execute(filled, "ALTER TABLE ledger_events ENABLE TRIGGER USER", owner=True)
    forged = fetch(filled, "SELECT min(seq) FROM ledger_events WHERE event_type = 'visit.submitted'")[0][0]
    report = verify(filled)
    assert not report.ok
    assert [found.seq for found in report.chain_breaks] == [forged]
    assert any(d.seq == forged for d in report.differences)  # the forged amount also re-derives differently


def test_a_forged_settlement_is_caught_by_re_derivation(filled):
    execute(filled, "ALTER TABLE ledger_settlements DISABLE TRIGGER USER", owner=True)
    execute(
        filled,
        "UPDATE ledger_settlements SET record = jsonb_set(record::jsonb, '{fund_paid}', '\"9999.00\"')::text "
        "WHERE settlement_id = (SELECT min(settlement_id) FROM ledger_settlements)",
        owner=True,
    )
    execute(filled, "ALTER TABLE ledger_settlements ENABLE TRIGGER USER", owner=True)
    report = verify(filled)
    assert not report.ok and not report.chain_breaks
    assert any("fund_paid" in d.detail for d in report.differences)


def test_a_parameter_set_whose_text_does_not_match_its_digest_is_reported(filled):
    execute(filled, "ALTER TABLE parameter_sets DISABLE TRIGGER USER", owner=True)
    execute(filled, "UPDATE parameter_sets SET content = content || '# forged'", owner=True)
    execute(filled, "ALTER TABLE parameter_sets ENABLE TRIGGER USER", owner=True)
    report = verify(filled)
    assert not report.ok
    assert any("does not hash to its digest" in d.detail for d in report.differences)


def test_a_forged_incentive_evaluation_is_caught_by_re_derivation(filled):
    execute(filled, "ALTER TABLE ledger_incentives DISABLE TRIGGER USER", owner=True)
    execute(
        filled,
        "UPDATE ledger_incentives SET record = jsonb_set(record::jsonb, '{after}', '5')::text "
        "WHERE member_id = (SELECT min(member_id) FROM ledger_incentives)",
        owner=True,
    )
    execute(filled, "ALTER TABLE ledger_incentives ENABLE TRIGGER USER", owner=True)
    report = verify(filled)
    assert not report.ok
    assert [d.what.split()[0] for d in report.differences] == ["ledger_incentives"]


def test_a_recorded_event_that_no_longer_decodes_is_reported(filled):
    execute(filled, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
    (third,) = fetch(filled, "SELECT seq FROM ledger_events ORDER BY seq OFFSET 2 LIMIT 1")[0]
    execute(filled, "UPDATE ledger_events SET payload = '{\"broken\":' WHERE seq = $1", third, owner=True)
    execute(filled, "ALTER TABLE ledger_events ENABLE TRIGGER USER", owner=True)
    report = verify(filled)
    assert not report.ok and [b.seq for b in report.chain_breaks] == [third]
    assert any(d.seq == third and "no longer decodes" in d.detail for d in report.differences)
