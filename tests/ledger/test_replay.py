"""Replay walks the ledger through the same pipeline: verify, rebuild, what-if."""

from __future__ import annotations

import asyncio
import json

from bench.generate import generate
from ledger.replay import Replayer
from tests import builders as b
from tests.ledger.helpers import IM_PARAMETERS, example_lines, fetch, ingest, verify

PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")


def _snapshot(db):
    return {table: sorted(tuple(r) for r in fetch(db, f"SELECT * FROM {table}")) for table in PROJECTIONS}


def _mixed(database):
    """Every region's examples, a generated stream with year closes, family payments and a reversal, parked
    events, and a change of parameter set half way."""
    ingest(database, example_lines("ningxia", "weihai", "nanjing"), batch_size=13)
    generated = [json.dumps(e) for e in generate(3_000, seed=11)]
    ingest(database, generated[:1500], IM_PARAMETERS, batch_size=97)
    b.fresh()
    late = [
        b.visit("LATE", b.WEIHAI, on="2024-03-01", items=[b.line("900.00")], level=1, grade=None),
        b.aid_authorized("LATE", b.WEIHAI, "LATE-SPOUSE", relation="spouse", on="2024-03-02"),
        b.enrolled("LATE", b.WEIHAI, on="2023-01-01"),
        b.contribution("LATE", b.WEIHAI, "2024-03", "8000.00"),
        b.enrolled("LATE-SPOUSE", b.WEIHAI, on="2023-01-01", person_type="resident_tier1"),
        b.visit(
            "LATE-SPOUSE",
            b.WEIHAI,
            on="2024-03-05",
            items=[b.line("400.00")],
            level=1,
            grade=None,
            account=True,
            payer="LATE",
        ),
    ]
    late.append(b.reversed_visit("LATE", b.WEIHAI, late[0]["visit_id"], on="2024-03-06"))
    ingest(database, [b.as_line(e) for e in late], batch_size=2)
    ingest(database, generated[1500:] + example_lines("inner-mongolia"), IM_PARAMETERS, batch_size=211)


def test_verify_passes_on_a_mixed_ledger_whatever_the_batch_sizes(database):
    _mixed(database)
    assert fetch(database, "SELECT count(DISTINCT params_digest) FROM ledger_events")[0][0] == 2
    assert fetch(database, "SELECT count(*) FROM ledger_incentives")[0][0] > 0
    assert fetch(database, "SELECT count(*) FROM ledger_settlements WHERE reverses IS NOT NULL")[0][0] > 0
    for batch_size in (1_000, 57):
        report = verify(database, batch_size=batch_size)
        assert report.ok, (report.chain_breaks, report.differences[:5], report.projection_differences)
        assert report.events == fetch(database, "SELECT count(*) FROM ledger_events")[0][0]


def test_projections_dropped_and_rebuilt_from_the_ledger_come_back_the_same(database):
    _mixed(database)
    before = _snapshot(database)
    asyncio.run(Replayer(database, batch_size=333).rebuild())
    assert _snapshot(database) == before
    assert verify(database).ok


def test_a_what_if_reports_the_fund_impact_and_leaves_the_ledger_alone(database):
    ingest(database, example_lines("nanjing"))
    head = fetch(database, "SELECT max(seq), count(*) FROM ledger_settlements")[0]
    what_if = '[policy."320100-2023".band_ratios.in_service]\nother = ["0.50", "0.70", "0.75"]\n'
    report = asyncio.run(Replayer(database).compare(what_if))
    changed = {key: values for key, values in report.fund_impact.items() if values[0] != values[1]}
    assert changed and all(region == "320100" and month.year == 2023 for region, _, month in changed)
    assert all(after > before for before, after in changed.values())  # 40% -> 50% in the first band
    assert report.changed_settlements > 0
    assert fetch(database, "SELECT max(seq), count(*) FROM ledger_settlements")[0] == head
    assert verify(database).ok


def test_verify_split_by_region_over_processes_agrees_and_catches_a_forgery(database):
    from ledger.replay import verify_in_parallel
    from tests.ledger.helpers import execute

    _mixed(database)
    counts = {r[0]: r[1] for r in fetch(database, "SELECT region, count(*) FROM ledger_events GROUP BY region")}
    told: list[tuple[int, int]] = []
    report = verify_in_parallel(database, 50, 2, counts, progress=lambda done, total: told.append((done, total)))
    total = sum(counts.values())
    assert report.ok and report.events == total
    # what both workers replayed, batch by batch, up to every event
    assert len(told) > 2 and told[-1] == (total, total) and all(t == total for _, t in told)
    assert [done for done, _ in told] == sorted(done for done, _ in told) and told[0][0] < total
    execute(database, "ALTER TABLE ledger_settlements DISABLE TRIGGER USER", owner=True)
    execute(
        database,
        "UPDATE ledger_settlements SET record = jsonb_set(record, '{fund_paid}', '\"1.00\"') "
        "WHERE settlement_id = (SELECT max(settlement_id) FROM ledger_settlements "
        "WHERE region = '320100')",
        owner=True,
    )
    execute(database, "ALTER TABLE ledger_settlements ENABLE TRIGGER USER", owner=True)
    broken = verify_in_parallel(database, 500, 2, counts)
    assert not broken.ok and not broken.chain_breaks and broken.difference_count == 1


def _both_ways(database):
    """verify in this process, and split by region over two worker processes."""
    from ledger.replay import verify_in_parallel

    counts = {r[0]: r[1] for r in fetch(database, "SELECT region, count(*) FROM ledger_events GROUP BY region")}
    return verify(database, batch_size=50), verify_in_parallel(database, 50, 2, counts)


def test_verify_catches_a_changed_projection_row_and_rebuild_restores_it(database):
    from tests.ledger.helpers import execute

    ingest(database, example_lines("nanjing", "weihai"))
    before = _snapshot(database)
    execute(
        database,
        "UPDATE fund_totals SET fund_paid = fund_paid + 1 "
        "WHERE (region, month, pool) = (SELECT region, month, pool FROM fund_totals ORDER BY 1, 2, 3 LIMIT 1)",
    )
    for report in _both_ways(database):
        assert not report.ok and not report.difference_count
        assert report.projection_differences == dict.fromkeys(PROJECTIONS, 0) | {"fund_totals": 2}
    asyncio.run(Replayer(database).rebuild())
    assert _snapshot(database) == before
    assert all(report.ok for report in _both_ways(database))


def test_verify_catches_projection_rows_of_a_region_without_events(database):
    from tests.ledger.helpers import execute

    ingest(database, example_lines("nanjing"))
    execute(
        database,
        "INSERT INTO fund_totals (region, month, pool, fund_paid, settlements, reversals) "
        "VALUES ('370100', '2023-05-01', 'general', 1000.00, 1, 0)",
    )
    for report in _both_ways(database):
        assert not report.ok and report.projection_differences["fund_totals"] == 1


def test_verify_catches_a_ledger_row_added_beside_a_year_close(database):
    """A year close is compared a chunk of its region's members at a time; a row under its position for someone
    who is no member there is met by no comparison, and still counted."""
    from tests.ledger.helpers import execute

    ingest(database, example_lines("nanjing"))
    (close,) = fetch(database, "SELECT seq FROM ledger_events WHERE event_type = 'period.year_closed' LIMIT 1")[0]
    execute(
        database,
        "INSERT INTO ledger_incentives (seq, region, member_id, year, record) "
        "VALUES ($1, '320100', 'NOBODY', 2023, '{\"member_id\": \"NOBODY\"}')",
        close,
    )
    for report in _both_ways(database):
        assert not report.ok and report.difference_count == 1
        (difference,) = report.differences
        assert difference.what == "ledger_incentives" and "1 incentive row(s)" in difference.detail


def test_a_later_release_with_other_defaults_still_verifies_what_was_recorded_before_it(database, monkeypatch):
    from policies import nanjing
    from policies.parameters import override

    ingest(database, example_lines("nanjing"))
    # A release that corrects a default the examples settle with (the first band of "other" facilities).
    later = tuple(
        (
            policy_id,
            start,
            end,
            override(defaults, {"band_ratios": {"in_service": {"other": ["0.50", "0.70", "0.75"]}}}, policy_id),
        )
        for policy_id, start, end, defaults in nanjing.VERSIONS
    )
    monkeypatch.setattr(nanjing, "VERSIONS", later)
    report = verify(database)
    assert report.ok, (report.differences[:5], report.projection_differences)
    # Replayed with the values recorded, not the new defaults: a what-if changing nothing moves no settlement,
    assert asyncio.run(Replayer(database).compare("")).changed_settlements == 0
    # while the correction itself, asked for, would have moved some.
    what_if = '[policy."320100-2023".band_ratios.in_service]\nother = ["0.50", "0.70", "0.75"]\n'
    assert asyncio.run(Replayer(database).compare(what_if)).changed_settlements > 0
    # Events recorded under the later release carry its values, under a parameter set of their own.
    b.fresh()
    member = b.enrolled("NJ-LATER", b.NANJING, on="2023-01-01")
    ingest(database, [b.as_line(member), b.as_line(b.visit("NJ-LATER", b.NANJING, on="2023-05-01"))])
    assert fetch(database, "SELECT count(DISTINCT params_digest) FROM ledger_events")[0][0] == 2
    assert verify(database).ok
