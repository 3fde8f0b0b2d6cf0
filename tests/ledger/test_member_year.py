"""member_year: a batch writes again only the years it can have changed, and the table stays what a rebuild from
the ledger gives, whatever the batch boundaries."""

from __future__ import annotations

import json

from bench.generate import generate
from projections.member_year import changed_years
from tests import builders as b
from tests.ledger.helpers import IM_PARAMETERS, fetch, ingest, verify

STATE = {
    "region": "320100",
    "member_id": "M",
    "statuses": [["2023-01-01", "employee", "in_service"]],
    "bonus_points": "0",
    "balance": "100.00",
    "counters": {"2023": {"general_fund": "10.00"}, "2024": {"general_fund": "5.00"}},
    "year_balances": {"2023": "80.00", "2024": "100.00"},
}
YEARS = {2023, 2024, 2025}


def _with(**changes):
    return {**STATE, **changes}


def test_a_counter_moves_its_own_year_only():
    after = _with(counters={**STATE["counters"], "2024": {"general_fund": "9.00"}})
    assert changed_years(STATE, after, YEARS) == {2024}


def test_a_half_year_period_counts_for_its_year():
    after = _with(counters={**STATE["counters"], "2023#1": {"general_base": "1.00"}})
    assert changed_years(STATE, after, YEARS) == {2023}


def test_a_balance_moves_its_year_and_every_later_one():
    after = _with(balance="90.00", year_balances={"2023": "70.00", "2024": "100.00"})
    assert changed_years(STATE, after, YEARS) == {2023, 2024, 2025}


def test_anything_else_moves_every_year():
    assert changed_years(STATE, _with(bonus_points="0.5"), YEARS) is None
    assert changed_years(STATE, _with(statuses=[["2023-01-01", "employee", "retired"]]), YEARS) is None
    assert changed_years(STATE, {**STATE, "terminated_on": "2024-06-01"}, YEARS) is None


def test_a_year_that_could_vanish_moves_every_year():
    assert changed_years(STATE, _with(counters={"2024": STATE["counters"]["2024"]}), YEARS) is None


def test_nothing_changed_writes_nothing():
    assert changed_years(STATE, dict(STATE), YEARS) == set()


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


def test_what_changed_years_counts_as_unread_no_row_reads():
    """Guards `UNREAD`: changing any of those parts of real members' states leaves every row as it was."""
    from ledger.codec import state_from_json, state_to_json
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
        state = state_to_json(member)
        expected = rows(member, years_of(member), book.policies)
        for key in UNREAD:
            changed = {**state, key: other[key] if key in other else not state[key]}
            assert changed != state
            again = state_from_json(changed)
            assert rows(again, years_of(again), book.policies) == expected, key
        checked += 1
    assert checked >= 90
