"""The downstream reporting consumer reads the settlement topic into its own tables; its totals equal the
ledger's own fund projection, and `medledger report` prints them."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal

from typer.testing import CliRunner

from consumers.cli import app
from consumers.reporting import Reporting, ReportingStore
from ledger.db.server import REPORTING_ROLE, with_user
from tests.kafka.streams import generated, publish, run, serving
from tests.ledger.helpers import IM_PARAMETERS, PRODUCED, example_lines, fetch, plain


def _ledger_fund(database) -> dict:
    rows = fetch(database, "SELECT region, month, pool, fund_paid, settlements, reversals FROM fund_totals")
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


def test_reporting_totals_equal_the_ledgers_fund_projection(settings, database, monkeypatch):
    lines = example_lines("ningxia", "weihai", "nanjing", "inner-mongolia") + [
        line.decode() for line in generated(1_500, 120)
    ]
    url = plain(with_user(database.owner_url, REPORTING_ROLE, os.environ.get("MEDLEDGER_REPORTING_PASSWORD")))

    async def scenario():
        await publish(settings, lines)
        store = ReportingStore(url)
        reporting = Reporting(settings, store)
        async with serving(settings, database, IM_PARAMETERS, batch_size=200), reporting.app:
            for _ in range(600):
                # events first: once all are in, the settlement count read after them is final
                events = await asyncio.to_thread(fetch_count, database, PRODUCED)
                ledger_count = await asyncio.to_thread(fetch_count, database, "ledger_settlements")
                reported = await store.pool.fetchval("SELECT count(*) FROM reporting.settlements")
                if events == len(lines) and reported == ledger_count:
                    break
                await asyncio.sleep(0.2)
            return await store.fund_by_pool()

    reported = run(scenario())
    ledger = _ledger_fund(database)
    assert ledger and reported == ledger

    region, month = max(ledger, key=lambda key: ledger[key][1])[:2]
    monkeypatch.setenv("MEDLEDGER_REPORTING_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["report", "--region", region, "--month", month.strftime("%Y-%m")])
    assert result.exit_code == 0, result.output
    total_row = next(line for line in result.output.splitlines() if "│ all" in line)
    cells = [cell.strip() for cell in total_row.strip("│ ").split("│")]
    general = ledger.get((region, month, "general"), (Decimal("0.00"), 0, 0))
    chronic = ledger.get((region, month, "chronic"), (Decimal("0.00"), 0, 0))
    assert cells[1] == str(general[1] + chronic[1])  # visits
    assert Decimal(cells[4]) == general[0] and Decimal(cells[5]) == chronic[0]
    cash, account = fetch(
        database,
        "SELECT sum((record::jsonb->>'cash_paid')::numeric), sum((record::jsonb->>'account_paid')::numeric) "
        "FROM ledger_settlements "
        "WHERE region = $1 AND date_trunc('month', visit_date) = $2",
        region,
        month,
    )[0]
    assert (Decimal(cells[7]), Decimal(cells[6])) == (cash, account)


def fetch_count(database, table: str) -> int:
    return fetch(database, f"SELECT count(*) FROM {table}")[0][0]
