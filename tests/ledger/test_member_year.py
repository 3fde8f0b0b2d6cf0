"""member_year: a batch writes again only the years it can have changed, and the table stays what a rebuild from
the ledger gives, whatever the batch boundaries."""

from __future__ import annotations

import json

from bench.generate import generate
from tests import builders as b
from tests.ledger.helpers import IM_PARAMETERS, fetch, ingest, verify


def _versions(database, member):
    rows = fetch(database, "SELECT year, xmin::text AS version FROM member_year WHERE member_id = $1", member)
    return {r["year"]: r["version"] for r in rows}


def test_a_visit_rewrites_its_year_and_leaves_the_earlier_one_alone(database):
    b.fresh()
    first = [
        b.enrolled("Y", b.NANJING, on="2023-01-01"),
        b.contribution("Y", b.NANJING, "2023-02", "9000.00"),
        b.visit("Y", b.NANJING, on="2023-03-01", items=[b.line("800.00")]),
        b.visit("Y", b.NANJING, on="2024-03-01", items=[b.line("500.00")]),
    ]
    ingest(database, [b.as_line(e) for e in first])
    before = _versions(database, "Y")
    assert set(before) == {2023, 2024}
    ingest(database, [b.as_line(b.visit("Y", b.NANJING, on="2024-04-01", items=[b.line("300.00")]))])
    after = _versions(database, "Y")
    assert after[2023] == before[2023] and after[2024] != before[2024]
    assert verify(database).ok
    # a late 2023 visit paid from the account moves the balance 2024 carries too
    ingest(database, [b.as_line(b.visit("Y", b.NANJING, on="2023-05-01", items=[b.line("200.00")], account=True))])
    late = _versions(database, "Y")
    assert late[2023] != after[2023] and late[2024] != after[2024]
    balances = fetch(database, "SELECT year, balance FROM member_year WHERE member_id = 'Y' ORDER BY year")
    assert balances[0]["balance"] == balances[1]["balance"] < 720
    assert verify(database).ok


def test_one_event_per_batch_gives_the_rows_a_rebuild_gives(database):
    lines = [json.dumps(e) for e in generate(1_200, seed=5)]
    ingest(database, lines, IM_PARAMETERS, batch_size=3)
    report = verify(database, batch_size=500)
    assert report.ok, report.projection_differences


def _members_after(lines, parameters):
    from ledger.intake import from_lines
    from policies.engine import Engine
    from policies.rejection import Rejected

    engine = Engine(parameters)
    for item in from_lines(lines, "t"):
        if item.event is not None:
            try:
                engine.apply(item.event, item.position)
            except Rejected:
                pass
    return engine.book


def test_what_counts_as_unread_no_row_reads():
    """Guards `UNREAD` (what `ledger.batch.YEARS_FROM_OUTPUTS` rests on): changing any of those parts of real
    members' states leaves every row as it was."""
    import orjson

    from ledger.codec import state_from_json, state_json
    from policies.parameters import parse_parameters
    from policies.summary import years_of
    from projections.member_year import UNREAD, rows
    from tests.ledger.helpers import example_lines

    parameters = parse_parameters(IM_PARAMETERS)
    lines = example_lines("ningxia", "weihai", "nanjing", "inner-mongolia")
    lines += [json.dumps(e) for e in generate(2_000, seed=3)]
    book = _members_after(lines, parameters)
    other = {
        "balance": "12345.67",
        "contribution_base": "99999.00",
        "monthly_pension": "1.00",
        "legacy_monthly_credit": "2.00",
        "retirement_pension": "3.00",
        "family_grants": {"SOMEONE": "spouse"},
        "designated_facilities": ["F-OTHER"],
        "contributions": {"2099-01": "1.00"},
    }
    assert set(other) | {"remote_pilot", "account_closed"} == UNREAD
    checked = 0
    for member in book.members.values():
        state = orjson.loads(state_json(member))
        expected = rows(member, years_of(member), book.policies)
        for key in UNREAD:
            changed = {**state, key: other[key] if key in other else not state[key]}
            assert changed != state
            again = state_from_json(changed)
            assert rows(again, years_of(again), book.policies) == expected, key
        checked += 1
    assert checked >= 90
