"""Ingest reads the fast decoder's Structs (no model instance built for what it takes) and writes the very ledger
the models' instances of the same input write: every row of every table alike, hash for hash, and it verifies."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from bench.generate import generate
from tests import builders as b
from tests.ledger.helpers import IM_PARAMETERS, example_lines, fetch, ingest, verify

_NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _stream() -> list[str]:
    """Every region's examples, a generated year, and what the durable path treats apart: a repeat written another
    way, a conflicting repeat, a payment id paid twice, a reversal, an event parked until its member enrols, and
    input that never becomes an event."""
    b.fresh()
    enrolled = b.enrolled("S-1", b.NANJING, on="2023-01-05")
    visit = b.visit("S-1", b.NANJING, on="2023-03-01", items=[b.line("800.00")])
    paid = b.payment("S-1", b.NANJING, "50.00", purpose="own_medical", on="2023-04-01")
    again = {
        **b.payment("S-1", b.NANJING, "60.00", purpose="own_medical", on="2023-04-02"),
        "payment_id": paid["payment_id"],
    }
    early = b.visit("S-2", b.NANJING, on="2023-03-02", items=[b.line("120.00")])
    lines = [
        *example_lines("ningxia", "weihai", "nanjing", "inner-mongolia"),
        *(json.dumps(event, default=str) for event in generate(1500, seed=7)),
        b.as_line(enrolled),
        b.as_line(visit),
        b.as_line(early),  # waits for S-2's enrolment
        b.as_line(paid),
        b.as_line(again),  # the payment id paid already
        b.as_line(visit).replace('"800.00"', '"800.0"', 1),  # the same visit written another way: a repeat
        b.as_line({**visit, "facility_id": "H-ELSEWHERE"}),  # another visit under the same id: refused
        b.as_line(b.reversed_visit("S-1", b.NANJING, visit["visit_id"], on="2023-03-05")),
        b.as_line(b.enrolled("S-2", b.NANJING, on="2023-01-06")),
        "{broken",
    ]
    return lines


def _rows(database: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the ledger, but for the instants the clock wrote (the rows' order kept)."""
    tables = [
        row["table_name"]
        for row in fetch(
            database,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name",
        )
    ]
    found = {}
    for table in tables:
        rows = fetch(database, f"SELECT * FROM {table}")  # noqa: S608 - the database's own table names
        kept = [tuple(value for value in row.values() if not isinstance(value, datetime | date)) for row in rows]
        found[table] = sorted(kept, key=repr)
    return found


def test_an_ingested_ledger_is_row_for_row_the_one_the_models_write_and_verifies(pg_server, engine_saw):
    lines = _stream()
    seen = engine_saw
    ledgers = {}
    for structs in (True, False):
        name, database = pg_server.fresh()
        try:
            seen.clear()
            stats, published = ingest(database, lines, IM_PARAMETERS, batch_size=97, now=_NOW, structs=structs)
            read = list(seen)
            ledgers[structs] = (stats, published, _rows(database))
            if structs:
                assert verify(database).ok  # the chain and the settlements, replayed from the ledger alone
                assert sum(issubclass(kind, msgspec.Struct) for kind in read) > 1500
            else:
                assert not any(issubclass(kind, msgspec.Struct) for kind in read)
        finally:
            pg_server.drop(name)
    (stats, published, rows), (by_models, published_by_models, rows_by_models) = ledgers[True], ledgers[False]
    assert stats == by_models and stats.duplicates >= 1
    assert published == published_by_models
    assert rows.keys() == rows_by_models.keys() and len(rows["ledger_events"]) > 1500
    for table in rows:
        assert rows[table] == rows_by_models[table], table
    reasons = {row["reason"] for row in published if "rejected" in row}
    assert {"event_id_conflict", "invalid_event"} <= reasons, reasons
