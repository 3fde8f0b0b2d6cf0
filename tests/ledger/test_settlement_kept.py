"""A settlement is kept in our names alone; its national aliases are added where it leaves medledger (the
topic's outbox, `settle`'s lines, the national interface). A ledger that kept them beside our names still
verifies, and an alias altered there is still found."""

from __future__ import annotations

from ledger.codec import dumps
from ledger.offline import settle_lines
from ledger.records import NATIONAL_ALIASES
from tests.ledger.helpers import example_lines, fetch, ingest, json_rows, unguarded, verify

ALIASES = {alias for _, alias in NATIONAL_ALIASES}


def test_the_ledger_keeps_a_settlement_in_our_names_and_publishes_it_with_its_aliases(database):
    lines = example_lines("nanjing", "weihai")
    _, published = ingest(database, lines)
    kept = json_rows(fetch(database, "SELECT record FROM ledger_settlements ORDER BY seq, settlement_id"))
    assert len(kept) > 10
    assert all(not ALIASES & set(record) for record in kept)
    # what leaves medledger has the aliases beside our names, in the order and bytes `settle` prints them
    outbox = [row["value"] for row in fetch(database, "SELECT value FROM outbox ORDER BY position")]
    assert outbox == [dumps(record) for record in published]
    settled = [record for record in published if "settlement_id" in record]
    printed = [record for record in settle_lines(lines) if "settlement_id" in record]
    assert [list(record) for record in settled] == [list(record) for record in printed]
    assert all(ALIASES <= set(record) for record in settled)
    assert verify(database).ok


def _as_kept_before(database):
    """Every settlement row as a ledger kept it before: the aliases beside our names."""
    pairs = ", ".join(f"'{alias}', record::jsonb -> '{name}'" for name, alias in NATIONAL_ALIASES)
    kept = f"(record::jsonb || jsonb_build_object({pairs}))::text"
    unguarded(database, "ledger_settlements", f"UPDATE ledger_settlements SET record = {kept}")


def test_settlements_kept_with_their_aliases_still_verify_and_an_altered_alias_is_found(database):
    ingest(database, example_lines("nanjing"))
    _as_kept_before(database)
    kept = json_rows(fetch(database, "SELECT record FROM ledger_settlements"))
    assert all(ALIASES <= set(record) for record in kept)
    report = verify(database)
    assert report.ok, report.differences[:3]

    settlement_id = kept[0]["settlement_id"]
    unguarded(
        database,
        "ledger_settlements",
        "UPDATE ledger_settlements SET record = jsonb_set(record::jsonb, '{hifp_pay}', '\"9999.00\"')::text "
        "WHERE settlement_id = $1",
        settlement_id,
    )
    report = verify(database)
    assert not report.ok
    assert any(settlement_id in d.what and "hifp_pay" in d.detail for d in report.differences), report.differences
