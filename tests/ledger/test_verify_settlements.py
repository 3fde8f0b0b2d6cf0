"""The re-derived settlements are compared with the ledger's in the database, a batch at a time
(`Replayer._check_settlements`): a settlement row added beside the derived ones, one taken away, and one copied
into another region under its id are each named, with its key, as the rows compared in Python are."""

from __future__ import annotations

from ledger.verify_rows import SETTLEMENTS
from tests.ledger.helpers import example_lines, fetch, ingest, unguarded, verify

COLUMNS = ", ".join(SETTLEMENTS.columns)


def _copy(**changed: str) -> str:
    """The columns of a settlement row as selected to copy it, some changed (to SQL expressions, quoted)."""
    return ", ".join(changed.get(c, c) for c in SETTLEMENTS.columns)


# under a new id and visit (a visit is settled once), at the same event
FORGED = _copy(settlement_id="'FORGED'", visit_id="'FORGED'")
# the same id in Weihai, at a Weihai event ($2)
ELSEWHERE = _copy(seq="$2", region="'371000'", visit_id="'ELSEWHERE'")


def _named(report) -> dict[str, str]:
    return {d.what: d.detail for d in report.differences}


def test_a_settlement_row_added_at_a_settled_event_is_named_as_derived_by_nothing(database):
    ingest(database, example_lines("nanjing"))
    ((settlement_id,),) = fetch(database, "SELECT min(settlement_id) FROM ledger_settlements WHERE reverses IS NULL")
    unguarded(
        database,
        "ledger_settlements",
        f"INSERT INTO ledger_settlements ({COLUMNS}) SELECT {FORGED} FROM ledger_settlements WHERE settlement_id = $1",
        settlement_id,
    )
    report = verify(database)
    assert _named(report).get("ledger_settlements settlement_id=FORGED") == "in the ledger but not re-derived"
    assert not report.ok


def test_a_settlement_row_taken_away_is_named_as_re_derived_but_not_in_the_ledger(database):
    ingest(database, example_lines("nanjing"))
    ((settlement_id,),) = fetch(database, "SELECT max(settlement_id) FROM ledger_settlements")
    unguarded(database, "ledger_settlements", "DELETE FROM ledger_settlements WHERE settlement_id = $1", settlement_id)
    report = verify(database)
    named = _named(report)
    assert named.get(f"ledger_settlements settlement_id={settlement_id}") == "re-derived but not in the ledger"


def test_a_settlement_copied_into_another_region_under_its_id_is_named(database):
    ingest(database, example_lines("nanjing", "weihai"))
    ((settlement_id,),) = fetch(
        database, "SELECT min(settlement_id) FROM ledger_settlements WHERE region = '320100' AND reverses IS NULL"
    )
    ((seq,),) = fetch(database, "SELECT min(seq) FROM ledger_settlements WHERE region = '371000'")
    unguarded(
        database,
        "ledger_settlements",
        f"INSERT INTO ledger_settlements ({COLUMNS}) SELECT {ELSEWHERE} FROM ledger_settlements "
        "WHERE settlement_id = $1",
        settlement_id,
        seq,
    )
    report = verify(database)
    found = [d for d in report.differences if d.what == f"ledger_settlements settlement_id={settlement_id}"]
    assert [(d.seq, d.detail) for d in found] == [(seq, "in the ledger but not re-derived")]


def test_a_settlement_row_at_an_adoption_is_reported_and_never_looked_up(database):
    """Verify looks a visit up among the ledger's settlements it has compared: not a row at a position no
    comparison reads (an adoption's), which holds what no rule wrote; here a record that is not JSON, under the
    visit of a settlement taken away, which the visit's replay looks up."""
    ingest(database, example_lines("nanjing"))
    ((settlement_id, visit_id),) = fetch(
        database,
        "SELECT settlement_id, visit_id FROM ledger_settlements WHERE region = '320100' AND reverses IS NULL "
        "ORDER BY seq DESC LIMIT 1",
    )
    ((adoption,),) = fetch(
        database,
        "SELECT min(seq) FROM ledger_events WHERE region = '320100' AND event_type = 'ledger.parameters_adopted'",
    )
    unguarded(database, "ledger_settlements", "DELETE FROM ledger_settlements WHERE settlement_id = $1", settlement_id)
    unguarded(
        database,
        "ledger_settlements",
        f"INSERT INTO ledger_settlements ({COLUMNS}) VALUES ('FORGED', $1, 'E', '320100', 'M', $2, '2024-01-01', "
        "'p', 'general', 1, NULL, 'not JSON', '[]')",
        adoption,
        visit_id,
    )
    report = verify(database)
    assert [(d.what, d.detail) for d in report.differences] == [
        (f"ledger_settlements settlement_id={settlement_id}", "re-derived but not in the ledger"),
        ("ledger_settlements", "1 settlement row(s) that no replayed event derives"),
    ]
