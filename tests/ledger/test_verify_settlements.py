"""The re-derived settlements are compared with the ledger's a batch at a time (`Replayer._check`), and visits
are looked up among the ledger's settlements compared so far (`db.verification.COMPARED`): a settlement row added
beside the derived ones, one taken away, and one copied into another region under its id are each named, with its
key; a row no comparison reads is reported and never looked up, whatever it holds."""

from __future__ import annotations

import pytest

from ledger.replay import verify_in_parallel
from ledger.verify_rows import SETTLEMENTS
from tests.ledger.helpers import example_lines, fetch, ingest, unguarded, unreferenced, verify

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


def _taken_away(database, region: str) -> tuple[str, str, int]:
    """(settlement id, visit id, position) of the region's last settled visit, its settlement taken away from the
    ledger."""
    ((settlement_id, visit_id, seq),) = fetch(
        database,
        "SELECT settlement_id, visit_id, seq FROM ledger_settlements WHERE region = $1 AND reverses IS NULL "
        "ORDER BY seq DESC LIMIT 1",
        region,
    )
    unguarded(database, "ledger_settlements", "DELETE FROM ledger_settlements WHERE settlement_id = $1", settlement_id)
    return settlement_id, visit_id, seq


# a settlement no rule wrote, its record not JSON: at the position $1, of the visit $2, region $3 and member $4
NOT_JSON = (
    f"INSERT INTO ledger_settlements ({COLUMNS}) VALUES ('FORGED', $1, 'E', $3, $4, $2, '2024-01-01', 'p', "
    "'general', 1, NULL, 'not JSON', '[]')"
)


def test_a_settlement_row_at_an_adoption_is_reported_and_never_looked_up(database):
    """Verify looks a visit up among the ledger's settlements it has compared: not a row at a position no
    comparison reads (an adoption's), which holds what no rule wrote; here a record that is not JSON, under the
    visit of a settlement taken away, which the visit's replay looks up."""
    ingest(database, example_lines("nanjing"))
    ((adoption,),) = fetch(
        database,
        "SELECT min(seq) FROM ledger_events WHERE region = '320100' AND event_type = 'ledger.parameters_adopted'",
    )
    settlement_id, visit_id, _ = _taken_away(database, "320100")
    unguarded(database, "ledger_settlements", NOT_JSON, adoption, visit_id, "320100", "M")
    report = verify(database)
    assert [(d.what, d.detail) for d in report.differences] == [
        (f"ledger_settlements settlement_id={settlement_id}", "re-derived but not in the ledger"),
        ("ledger_settlements", "1 settlement row(s) that no replayed event derives"),
    ]


@pytest.mark.parametrize("batch_size", [40, 2000])
def test_a_settlement_row_at_a_year_close_is_reported_and_never_looked_up(database, batch_size):
    """A year close derives no settlement, and its rows are read for the members of each chunk alone: a settlement
    at its position, of no member, is read by no comparison, and is never looked up."""
    ingest(database, example_lines("nanjing"))
    ((close,),) = fetch(
        database, "SELECT min(seq) FROM ledger_events WHERE region = '320100' AND event_type = 'period.year_closed'"
    )
    settlement_id, visit_id, _ = _taken_away(database, "320100")
    unguarded(database, "ledger_settlements", NOT_JSON, close, visit_id, "320100", "nobody")
    report = verify(database, batch_size=batch_size)
    assert {(d.what, d.detail) for d in report.differences} == {
        ("ledger_settlements", "1 settlement row(s) that no replayed event derives"),
        (f"ledger_settlements settlement_id={settlement_id}", "re-derived but not in the ledger"),
    }
    assert report.difference_count == 2


@pytest.mark.parametrize("batch_size", [1, 40])
def test_a_settlement_copied_into_a_region_walked_first_is_the_one_difference(database, batch_size):
    """A settlement copied under its id into a region whose events come first: the copy alone is named; the
    genuine row stays where its reversal looks it up."""
    ingest(database, example_lines("nanjing", "weihai"))
    ((settlement_id,),) = fetch(
        database,
        "SELECT s.settlement_id FROM ledger_settlements s WHERE s.region = '371000' AND s.reverses IS NULL "
        "AND EXISTS (SELECT FROM ledger_settlements r WHERE r.reverses = s.settlement_id) ORDER BY s.seq LIMIT 1",
    )
    ((seq,),) = fetch(database, "SELECT min(seq) FROM ledger_settlements WHERE region = '320100'")
    copy = _copy(seq="$2", region="'320100'", visit_id="'COPY'")
    unguarded(
        database,
        "ledger_settlements",
        f"INSERT INTO ledger_settlements ({COLUMNS}) SELECT {copy} FROM ledger_settlements WHERE settlement_id = $1",
        settlement_id,
        seq,
    )
    report = verify(database, batch_size=batch_size)
    assert [(d.seq, d.what, d.detail) for d in report.differences] == [
        (seq, f"ledger_settlements settlement_id={settlement_id}", "in the ledger but not re-derived")
    ]


def test_a_settlement_of_another_region_than_its_event_is_never_looked_up(database):
    """Verify split by region: a settlement of Weihai's at a Nanjing event's position (its reference to its event
    put out of the way) is read by the comparison of Nanjing's events alone; Weihai's replayer never looks it
    up, though it is at a position its walk has passed."""
    ingest(database, example_lines("nanjing", "weihai"))
    settlement_id, visit_id, replayed_at = _taken_away(database, "371000")
    ((seq,),) = fetch(
        database, "SELECT min(seq) FROM ledger_events WHERE region = '320100' AND event_type = 'visit.submitted'"
    )
    assert seq < replayed_at  # passed by Weihai's walk when it settles the visit again

    unreferenced(database, (NOT_JSON, seq, visit_id, "371000", "M"))
    counts = dict(fetch(database, "SELECT region, count(*) FROM ledger_events GROUP BY region"))
    report = verify_in_parallel(database, 40, 2, counts)
    assert {(d.what, d.detail) for d in report.differences} == {
        # met at Nanjing's position, and counted there, though no Nanjing row derives it
        ("ledger_settlements", "-1 settlement row(s) that no replayed event derives"),
        ("ledger_settlements settlement_id=FORGED", "in the ledger but not re-derived"),
        (f"ledger_settlements settlement_id={settlement_id}", "re-derived but not in the ledger"),
    }
    assert report.difference_count == 3
