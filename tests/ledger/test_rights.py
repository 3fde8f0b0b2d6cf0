"""The service role holds only the rights serve, ingest, the parked sweep and replay use; the maintenance role
rebuilds the projections."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.db.server import Database
from ledger.replay import Replayer
from tests.ledger.helpers import EXAMPLES, as_maintenance, execute, fetch, ingest, verify

PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")
KEY_OF = {
    "member_state": "member_id = 'x'",
    "member_year": "member_id = 'x'",
    "fund_totals": "pool = 'x'",
    "closed_years": "region = 'x'",
    "account_payments": "payment_id = 'x'",
    "consumer_offsets": "consumer = 'x'",
}
REFUSED = (
    [f"TRUNCATE {table}" for table in (*PROJECTIONS, "consumer_offsets")]
    + [f"DELETE FROM {table} WHERE {KEY_OF[table]}" for table in (*PROJECTIONS, "consumer_offsets")]
    + [f"UPDATE {table} SET region = region WHERE {KEY_OF[table]}" for table in ("closed_years", "account_payments")]
)
REFUSED.remove("DELETE FROM member_year WHERE member_id = 'x'")  # a member's years are rewritten whole


@pytest.mark.parametrize("statement", REFUSED)
def test_the_service_role_is_refused_what_no_writer_of_it_does(database, statement):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        execute(database, statement)


def test_the_service_role_keeps_what_serve_ingest_and_replay_do(database):
    for table, statement in {
        "member_year": "DELETE FROM member_year WHERE member_id = 'x'",
        "member_state": "UPDATE member_state SET last_seq = last_seq WHERE member_id = 'x'",
        "fund_totals": "UPDATE fund_totals SET reversals = reversals WHERE pool = 'x'",
        "consumer_offsets": "UPDATE consumer_offsets SET next_offset = next_offset WHERE consumer = 'x'",
    }.items():
        assert execute(database, statement).split()[-1] == "0", table
    ingest(database, (EXAMPLES / "nanjing.jsonl").read_text().splitlines())
    assert verify(database).ok


def test_only_the_maintenance_role_rebuilds_the_projections(database, monkeypatch):
    ingest(database, (EXAMPLES / "nanjing.jsonl").read_text().splitlines())
    before = {table: sorted(map(tuple, fetch(database, f"SELECT * FROM {table}"))) for table in PROJECTIONS}
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(Replayer(database).rebuild())
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_APP_DATABASE_URL", database.app_url)
    monkeypatch.setenv("MEDLEDGER_MAINTENANCE_DATABASE_URL", as_maintenance(database).app_url)
    result = CliRunner().invoke(app, ["projections", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "rebuilt from 82 ledger events" in result.stderr
    assert {table: sorted(map(tuple, fetch(database, f"SELECT * FROM {table}"))) for table in PROJECTIONS} == before
    assert fetch(database, "SELECT current_user", owner=False)[0][0] == "medledger_app"
    assert verify(database).ok


def test_the_maintenance_role_writes_nothing_in_the_ledger(database):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        execute(as_maintenance(database), "INSERT INTO parameter_sets (digest, content) VALUES ('x', 'x')")


def test_rebuild_with_only_the_service_role_says_what_it_needs(database, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDLEDGER_MAINTENANCE_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_APP_DATABASE_URL", database.app_url)
    result = CliRunner().invoke(app, ["projections", "rebuild"])
    assert result.exit_code == 2 and "MEDLEDGER_MAINTENANCE_DATABASE_URL" in result.stderr


def _gateway(database: Database) -> Database:
    from gateway.settings import gateway_database

    return gateway_database(lambda: database)


def test_the_gateway_role_may_write_in_no_table(database):
    """The gateway faces the hospitals' systems: what it settles reaches the ledger only through the event topic,
    signed and checked like any producer's, never by a statement of its own."""
    gateway = _gateway(database)
    assert fetch(gateway, "SELECT current_user")[0][0] == "medledger_gateway"
    tables = [row[0] for row in fetch(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert {"ledger_events", "parameter_sets", "outbox", "member_state", "consumer_offsets"} <= set(tables)
    for table in tables:
        for statement in (f"INSERT INTO {table} DEFAULT VALUES", f"DELETE FROM {table}", f"TRUNCATE {table}"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                execute(gateway, statement)


def test_the_gateway_role_reads_what_a_counter_asks_and_nothing_more(database):
    ingest(database, (EXAMPLES / "nanjing.jsonl").read_text().splitlines())
    gateway = _gateway(database)
    for table in ("ledger_settlements", "member_state", "ledger_events", "parameter_sets", "alembic_version"):
        assert fetch(gateway, f"SELECT count(*) FROM {table}")[0][0] > 0, table
    for table in ("ledger_signatures", "outbox", "consumer_offsets", "console_users", "fund_totals"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            fetch(gateway, f"SELECT count(*) FROM {table}")
