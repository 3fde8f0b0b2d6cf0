"""The output is authenticated: the relay signs every record with the ledger's key, and the reporting consumer takes
only what verifies. A settlement forged on the topic (its id is predictable) and a record that does not parse go to
the consumer's dead letters, counted and never read again; the report still equals the ledger."""

from __future__ import annotations

import asyncio
import os

import orjson
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from consumers.cli import app
from consumers.reporting import Reporting, ReportingStore
from consumers.topics import ensure_topics
from ledger.authority import LedgerSigner, generate, load_private
from ledger.db.server import REPORTING_ROLE, with_user
from ledger.offline import settle_lines
from tests.kafka.streams import publish, run, serving, wait_for
from tests.ledger.helpers import PRODUCED, example_lines, fetch, plain, verify


def _ledger_fund(database) -> dict:
    rows = fetch(database, "SELECT region, month, pool, fund_paid, settlements, reversals FROM fund_totals")
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


async def _send(settings, topic: str, records: list[tuple[bytes, list]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value, key=b"320113195306110004", headers=headers)
    finally:
        await producer.stop()


def test_forged_and_malformed_settlement_records_are_dead_letters_and_the_report_equals_the_ledger(
    settings, database, monkeypatch
):
    lines = example_lines("nanjing")
    first = next(record for record in settle_lines(lines) if "settlement_id" in record)
    # The attacker's settlement arrives first under the id the ledger will give: in the report, the first row won.
    forged = orjson.dumps(first | {"fund_paid": "999999.00", "total_amount": "999999.00"})
    impostor = LedgerSigner(generate())  # signed, but not with the ledger's key
    malformed_but_signed = b'{"settlement_id": "x", "visit_date": "not a date"'
    url = plain(with_user(database.owner_url, REPORTING_ROLE, os.environ.get("MEDLEDGER_REPORTING_PASSWORD")))

    async def scenario():
        ledger_signed = LedgerSigner(load_private(settings.ledger_key))
        await ensure_topics(settings)
        await _send(
            settings,
            settings.settlements_topic,
            [
                (forged, []),
                (forged, impostor.headers(forged)),
                (b"\xff not json", []),
                (malformed_but_signed, ledger_signed.headers(malformed_but_signed)),
            ],
        )
        await publish(settings, lines)
        store = ReportingStore(url)
        reporting = Reporting(settings, store)
        async with serving(settings, database), reporting.app:

            async def caught_up():
                events = await asyncio.to_thread(fetch_count, database, PRODUCED)
                ledger_count = await asyncio.to_thread(fetch_count, database, "ledger_settlements")
                reported = await store.pool.fetchval("SELECT count(*) FROM reporting.settlements")
                return events == len(lines) and reported == ledger_count

            assert await wait_for(caught_up, timeout=120), "the report never caught up with the ledger"
            return await store.fund_by_pool(), await store.dead_letters(), reporting.refused

    reported, dead, refused = run(scenario())
    assert reported == _ledger_fund(database)
    assert dead == {"unsigned": 3, "unreadable": 1}
    assert refused == 4  # each counted once: none was read again
    query = "SELECT fund_paid FROM reporting.settlements WHERE settlement_id = $1"
    stored = fetch(database, query, first["settlement_id"], owner=True)
    assert str(stored[0][0]) == first["fund_paid"]

    monkeypatch.setenv("MEDLEDGER_REPORTING_DATABASE_URL", url)
    monkeypatch.setenv("DATABASE_URL", database.owner_url)  # the test's ledger, never the user's own
    result = CliRunner().invoke(app, ["reconcile"])
    assert result.exit_code == 0, result.output
    assert "dead letters: 1 unreadable, 3 unsigned" in result.output
    assert "0 differ" in result.output
    assert verify(database).ok  # the ledger itself is untouched


def fetch_count(database, table: str) -> int:
    return fetch(database, f"SELECT count(*) FROM {table}")[0][0]
