"""The reporting consumer connects as a role of its own: its tables in the `reporting` schema, nothing else."""

from __future__ import annotations

import asyncio
import importlib
import os
from datetime import date
from decimal import Decimal

import asyncpg
import pytest

from consumers.reporting import ReportingStore
from ledger.db.server import REPORTING_ROLE, with_user
from tests.ledger.helpers import execute, plain

SETTLEMENT = {
    "settlement_id": "S1",
    "region": "320100",
    "visit_date": "2023-05-06",
    "facility_level": 3,
    "fund_pool": "general",
    "total_amount": "999999999999999.99",  # the largest the contract accepts
    "fund_paid": "120.00",
    "account_paid": "0.00",
    "cash_paid": "999999999999879.99",
}


def _reporting(database) -> str:
    return plain(with_user(database.owner_url, REPORTING_ROLE, os.environ.get("MEDLEDGER_REPORTING_PASSWORD")))


def _fill_and_read(url: str) -> list:
    async def scenario():
        store = await ReportingStore(url).open()
        try:
            assert await store.add([SETTLEMENT]) == 1
            return await store.month("320100", date(2023, 5, 1))
        finally:
            await store.close()

    return asyncio.run(scenario())


def test_the_reporting_role_makes_and_fills_its_tables_and_may_not_touch_the_ledger(database):
    (line, *_) = _fill_and_read(_reporting(database))
    assert line.total_amount == Decimal(SETTLEMENT["total_amount"])

    async def trespass(statement: str) -> None:
        connection = await asyncpg.connect(_reporting(database))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    for statement in (
        "SELECT count(*) FROM ledger_events",
        "INSERT INTO fund_totals (region, month, pool, fund_paid, settlements, reversals) "
        "VALUES ('320100', '2023-05-01', 'general', 1, 1, 0)",
        "ALTER TABLE ledger_events DISABLE TRIGGER USER",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            asyncio.run(trespass(statement))


def test_a_reporting_table_the_owner_made_earlier_is_widened_and_opened_to_the_role(database):
    migration = importlib.import_module("ledger.db.migrations.versions.0005_reporting_role")
    execute(database, "DROP TABLE IF EXISTS reporting.settlements", owner=True)
    execute(
        database,
        "CREATE TABLE reporting.settlements (settlement_id text PRIMARY KEY, region text NOT NULL, "
        "month date NOT NULL, visit_date date NOT NULL, facility_level integer, pool text NOT NULL, reverses text, "
        "total_amount numeric(16, 2) NOT NULL, fund_paid numeric(16, 2) NOT NULL, "
        "account_paid numeric(16, 2) NOT NULL, cash_paid numeric(16, 2) NOT NULL, "
        "received_at timestamptz NOT NULL DEFAULT now())",
        owner=True,
    )
    execute(database, "CREATE INDEX settlements_region_month ON reporting.settlements (region, month)", owner=True)
    execute(database, migration.EARLIER_TABLE, owner=True)
    (line, *_) = _fill_and_read(_reporting(database))
    assert line.total_amount == Decimal(SETTLEMENT["total_amount"])


def test_reporting_connects_as_its_role_by_default(monkeypatch, database):
    from consumers.cli import _reporting_url

    monkeypatch.delenv("MEDLEDGER_REPORTING_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    assert plain(_reporting_url()).startswith(f"postgresql://{REPORTING_ROLE}")
