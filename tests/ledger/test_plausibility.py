"""Implausible events sent to the durable ledger as an attacker with access to the topic would send them: each is
refused and kept, no balance or projection moves, the ledger's own events settle as before, and `replay --verify`
passes (policies.limits, docs/policies-limits.md)."""

from __future__ import annotations

import pytest

from tests import builders as b
from tests.ledger.helpers import fetch, ingest, records, verify

NJ, NX = b.NANJING, b.NINGXIA
PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")
SETTLED = ("ledger_settlements", "ledger_movements", "ledger_incentives")


def _history():
    """Members of Nanjing and Ningxia with a contribution, a veteran's credit, a certification and a visit."""
    b.fresh()
    return [
        b.enrolled("NJ-A", NJ, on="2022-12-01"),
        b.enrolled("NJ-V", NJ, on="2022-12-01", person_type="veteran_pre1949", legacy_monthly_credit="165.00"),
        b.enrolled("NX-A", NX, on="2023-06-01"),
        b.contribution("NJ-A", NJ, "2023-07", "9000.00"),
        b.pension("NJ-V", NJ, "2023-07", "4200.00"),
        b.chronic_certified("NX-A", NX, "E11", "3000.00", on="2023-06-01"),
        b.visit("NJ-A", NJ, on="2023-02-01", items=[b.line("300.00")]),
    ]


def _attacks():
    """The events of the attacks, each one the ledger must refuse."""
    base = "999999999999999.99"  # the largest base the contract lets through: 2% credits 20,000,000,000,000.00
    return {
        "20,000,000,000,000.00 for 2023-08": b.contribution("NJ-A", NJ, "2023-08", base),
        "20,000,000,000,000.00 for 2023-08 again": b.contribution("NJ-A", NJ, "2023-08", base, on="2023-08-16"),
        "a second, plausible contribution for 2023-07": b.contribution(
            "NJ-A", NJ, "2023-07", "9000.00", on="2023-07-16"
        ),
        "a veteran credited 999,999,999,999.00": b.enrolled(
            "NJ-W", NJ, on="2023-01-01", person_type="veteran_pre1949", legacy_monthly_credit="999999999999.00"
        ),
        "Nanjing 2023 closed on 2023-03-01": b.year_closed(NJ, 2023, on="2023-03-01"),
        "Nanjing 2024 closed in 2023": b.year_closed(NJ, 2024, on="2023-03-01"),
        "Ningxia 2030 closed in 2023": b.year_closed(NX, 2030, on="2023-08-01"),
        "a chronic cap of 10^15": b.chronic_certified("NX-A", NX, "C50", "999999999999999.99", on="2023-08-01"),
        "the cap raised to 10^15": b.cap_adjusted("NX-A", NX, "E11", "999999999999999.99", on="2023-08-02"),
        "a payment of 0.00": b.payment("NJ-A", NJ, "0.00", on="2023-08-03"),
    }


def _snapshot(database) -> dict:
    return {
        table: [tuple(row) for row in fetch(database, f"SELECT * FROM {table} ORDER BY 1, 2")]
        for table in PROJECTIONS + SETTLED
    }


@pytest.mark.parametrize("batch_size", [1, 50])
def test_every_attack_is_refused_and_kept_and_moves_nothing(database, batch_size):
    history = _history()
    ingest(database, [b.as_line(e) for e in history], batch_size=batch_size)
    before = _snapshot(database)
    attacks = _attacks()
    stats, published = ingest(database, [b.as_line(e) for e in attacks.values()], batch_size=batch_size)

    assert stats.appended == len(attacks) and stats.rejected == len(attacks)
    refused = {r["rejected"]: r for r in records(published, "rejected")}
    assert set(refused) == {e["event_id"] for e in attacks.values()}
    assert not records(published, "movement_id") and not records(published, "incentive")
    reasons = {name: refused[event["event_id"]]["reason"] for name, event in attacks.items()}
    assert reasons == {
        name: "duplicate_contribution" if "second, plausible" in name else "implausible" for name in attacks
    }
    kept = fetch(
        database,
        "SELECT e.event_id, r.reason FROM ledger_rejections r JOIN ledger_events e ON e.seq = r.seq",
    )
    assert {row["event_id"]: row["reason"] for row in kept} == {
        event["event_id"]: reasons[name] for name, event in attacks.items()
    }
    assert _snapshot(database) == before
    assert verify(database).ok


def _states(database) -> dict:
    """What members and funds stand at, without the ledger positions the refused events took."""
    return {
        "member_state": [
            tuple(r) for r in fetch(database, "SELECT region, member_id, state FROM member_state ORDER BY 1, 2")
        ],
        "member_year": [tuple(r) for r in fetch(database, "SELECT * FROM member_year ORDER BY 1, 2, 3")],
        "fund_totals": [tuple(r) for r in fetch(database, "SELECT * FROM fund_totals ORDER BY 1, 2, 3")],
        "closed_years": [tuple(r) for r in fetch(database, "SELECT region, year FROM closed_years ORDER BY 1, 2")],
    }


def test_after_the_attacks_the_year_settles_and_closes_as_without_them(database, pg_server):
    """The early close refused every later 2023 visit and credited 200.00 to everyone; refused, it does neither:
    the stream with the attacks ends where the stream without them does."""
    history = _history()
    later = [
        b.visit("NJ-A", NJ, on="2023-09-01", items=[b.line("200.00")]),
        b.year_closed(NJ, 2023, on="2024-01-01"),
    ]
    ingest(database, [b.as_line(e) for e in history])
    ingest(database, [b.as_line(e) for e in _attacks().values()])
    stats, published = ingest(database, [b.as_line(e) for e in later])
    assert stats.rejected == 0
    (settlement,) = records(published, "settlement_id")
    assert settlement["visit_id"] == later[0]["visit_id"]
    assert {r["member_id"] for r in records(published, "incentive")} == {"NJ-A", "NJ-V"}
    # the fund paid NJ-A's 2023 visits, so only the veteran earns the health incentive (002 第七条)
    assert {m["member_id"]: m["amount"] for m in records(published, "movement_id")} == {"NJ-V": "200.00"}
    assert verify(database).ok

    name, clean = pg_server.fresh()
    try:
        ingest(clean, [b.as_line(e) for e in history + later])
        assert _states(database) == _states(clean)
    finally:
        pg_server.drop(name)


def test_a_correction_settles_the_difference_in_the_ledger_and_replays(database):
    b.fresh()
    posted = b.contribution("NJ-K", NJ, "2023-03", "9000.00")
    again = b.contribution("NJ-K", NJ, "2023-03", "9000.00", on="2023-03-20")
    corrected = b.contribution(
        "NJ-K", NJ, "2023-03", "10000.00", on="2023-04-02", event_type="account.contribution_corrected", reason="r"
    )
    stats, published = ingest(database, [b.as_line(e) for e in (b.enrolled("NJ-K", NJ), posted, again, corrected)])
    assert [r["reason"] for r in records(published, "rejected")] == ["duplicate_contribution"]
    moved = [(m["purpose"], m["amount"], m["balance_after"]) for m in records(published, "movement_id")]
    assert moved == [("contribution", "180.00", "180.00"), ("contribution_correction", "20.00", "200.00")]
    (row,) = fetch(database, "SELECT balance FROM member_year WHERE member_id = 'NJ-K' AND year = 2023")
    assert str(row["balance"]) == "200.00"
    assert verify(database).ok
