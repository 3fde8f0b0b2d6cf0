"""Ingest into a real PostgreSQL: the same settlements as the offline tool, idempotent, gap-free and chained."""

from __future__ import annotations

import asyncpg
import pytest

from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests import builders as b
from tests.kafka.streams import generated
from tests.ledger.helpers import IM_PARAMETERS, example_lines, fetch, gap_free, ingest, records, refusing_outbox, verify


def _without_seq(outputs):
    return [{k: v for k, v in o.items() if k != "ledger_seq"} for o in outputs]


def test_ingest_publishes_what_settle_prints_and_is_idempotent(database):
    lines = example_lines("ningxia", "weihai", "nanjing", "inner-mongolia")
    stats, published = ingest(database, lines, IM_PARAMETERS, batch_size=37)
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    assert _without_seq(published) == _without_seq(offline)
    assert stats.appended == len(lines) and stats.duplicates == 0
    counts = {
        table: fetch(database, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("ledger_events", "ledger_settlements", "ledger_movements", "ledger_rejections")
    }
    assert counts["ledger_events"] == len(lines) + 4  # and each region's stream's adoption of the parameter set
    assert counts["ledger_settlements"] == len(records(offline, "settlement_id"))
    assert counts["ledger_movements"] == len(records(offline, "movement_id"))

    again, republished = ingest(database, lines, IM_PARAMETERS, batch_size=50)
    assert again.appended == 0 and again.duplicates == len(lines) and republished == []
    assert {table: fetch(database, f"SELECT count(*) FROM {table}")[0][0] for table in counts} == counts


def test_sequences_are_gap_free_and_every_hash_links_to_the_one_before(database):
    ingest(database, example_lines("weihai"), batch_size=7)
    assert gap_free(database) == {"371000": len(example_lines("weihai")) + 1}


def test_malformed_input_is_rejected_and_kept_and_the_rest_settles(database):
    b.fresh()
    good = [b.enrolled("M1", b.NANJING), b.visit("M1", b.NANJING, on="2023-03-01", items=[b.line("800.00")])]
    lines = [
        b.as_line(good[0]),
        "{broken",
        b.as_line({**good[1], "surprise": 1}),
        b.as_line({**good[1], "event_id": "ok-visit"}),
    ]
    stats, published = ingest(database, lines)
    rejected = records(published, "rejected")
    assert [r["rejected"] for r in rejected] == [2, good[1]["event_id"]]
    kept = fetch(database, "SELECT seq, reason, detail, payload, source FROM ledger_rejections ORDER BY rejection_id")
    assert [(r["seq"], r["reason"], r["source"]) for r in kept] == [
        (None, "invalid_event", "test:2"),
        (None, "invalid_event", "test:3"),
    ]
    assert kept[0]["payload"] == "{broken" and "surprise" in kept[1]["detail"]
    assert records(published, "settlement_id")[0]["fund_paid"] == "320.00"  # 002 第十四条: 800 × 40%


@pytest.mark.parametrize("batch_size", [3, 100])
def test_rejection_rows_are_numbered_in_the_order_the_events_were_refused(database, batch_size):
    b.fresh()
    lines = []
    for n in range(6):
        member = f"M{n}"
        lines += [
            b.as_line(b.enrolled(member, b.NINGXIA)),
            b.as_line(b.visit(member, b.NINGXIA, on="2023-05-31")),  # before 000 took effect
            "{broken" + "x" * n,
            b.as_line(b.payment(member, b.NINGXIA, "50.00", purpose="fitness", on="2023-07-01")),  # 000 第八条
        ]
    stats, published = ingest(database, lines, batch_size=batch_size)
    # every pipelined batch found the ledger where the batch before left it, last rejection id included
    assert stats.resettled == 0
    refused = [r["rejected"] for r in records(published, "rejected")]
    assert len(refused) == 18
    kept = fetch(database, "SELECT event_id, source FROM ledger_rejections ORDER BY rejection_id")
    assert [r["event_id"] or int(r["source"].rsplit(":", 1)[1]) for r in kept] == refused


def test_a_policy_rejection_is_a_ledger_row_tied_to_its_event(database):
    b.fresh()
    early = b.visit("M1", b.NINGXIA, on="2023-05-31")  # before 000 took effect
    stats, published = ingest(database, [b.as_line(b.enrolled("M1", b.NINGXIA)), b.as_line(early)])
    late = b.payment("M1", b.NINGXIA, "50.00", purpose="fitness", on="2023-07-01")  # 000 第八条: not allowed
    ingest(database, [b.as_line(late)])
    rows = fetch(
        database,
        "SELECT r.reason, r.policy_id, e.event_id FROM ledger_rejections r JOIN ledger_events e "
        "ON e.seq = r.seq ORDER BY r.seq",
    )
    assert [tuple(r) for r in rows] == [
        ("policy_not_configured", None, early["event_id"]),
        ("purpose_not_allowed", "640000-2023", late["event_id"]),
    ]


def test_a_duplicate_visit_id_is_refused_by_the_engine_and_the_database(database):
    b.fresh()
    first = b.visit("M1", b.NANJING, on="2023-03-01", visit_id="V-SAME")
    second = b.visit("M1", b.NANJING, on="2023-03-02", visit_id="V-SAME")
    stats, published = ingest(database, [b.as_line(b.enrolled("M1", b.NANJING)), b.as_line(first)])
    stats, published = ingest(database, [b.as_line(second)])
    assert records(published, "rejected")[0]["reason"] == "duplicate_visit"
    assert fetch(database, "SELECT count(*) FROM ledger_settlements WHERE visit_id = 'V-SAME'")[0][0] == 1


@pytest.mark.parametrize("large", [False, True], ids=["one statement", "a statement at a time"])
def test_a_batch_that_fails_half_way_leaves_nothing_behind(database, monkeypatch, large):
    import ledger.db.recorder
    from ledger.db.writes import LARGE

    lines = example_lines("nanjing")[:20]
    if large:
        lines = [line.decode() for line in generated(LARGE + 100, 40)]
    modes = []

    def spied(writes, rows):
        modes.append(writes.large)
        return refusing_outbox(add_outbox)(writes, rows)

    add_outbox = ledger.db.recorder.add_outbox
    monkeypatch.setattr(ledger.db.recorder, "add_outbox", spied)
    with pytest.raises(asyncpg.NotNullViolationError, match="stream"):
        ingest(database, lines, IM_PARAMETERS if large else "", batch_size=10_000)
    assert modes[-1] is large
    for table in ("ledger_events", "ledger_settlements", "ledger_movements", "member_state", "parameter_sets"):
        assert fetch(database, f"SELECT count(*) FROM {table}")[0][0] == 0, table
    monkeypatch.undo()
    stats, _ = ingest(database, lines, IM_PARAMETERS if large else "", batch_size=10_000)
    assert stats.appended == len(lines) and stats.duplicates == 0


def test_unreadable_input_is_published_in_its_place_and_recorded_once(database):
    b.fresh()
    lines = [
        b.as_line(b.enrolled("M1", b.NANJING)),
        "{not json",
        b.as_line(b.visit("M1", b.NANJING, on="2023-03-01", items=[b.line("800.00")])),
        "[]",
    ]
    stats, published = ingest(database, lines)
    assert _without_seq(published) == _without_seq(settle_lines(lines))
    again, republished = ingest(database, lines)
    assert republished == [] and again.duplicates == len(lines)
    assert fetch(database, "SELECT count(*) FROM ledger_rejections")[0][0] == 2


def test_member_years_do_not_depend_on_batch_boundaries_across_a_re_enrolment(database):
    from tests.ledger.helpers import verify

    b.fresh()
    events = [
        b.enrolled("RE", b.NANJING, on="2023-01-01"),
        b.visit("RE", b.NANJING, on="2023-03-01"),
        b.terminated("RE", b.NANJING, on="2023-06-01", reason="transfer_out"),
        b.enrolled("RE", b.NANJING, on="2024-01-01"),
        b.visit("RE", b.NANJING, on="2024-03-01"),
    ]
    ingest(database, [b.as_line(e) for e in events], batch_size=1)
    years = [r["year"] for r in fetch(database, "SELECT year FROM member_year WHERE member_id = 'RE' ORDER BY year")]
    assert years == [2023, 2024]
    for batch_size in (1, 1000):
        report = verify(database, batch_size=batch_size)
        assert report.ok, report.projection_differences


@pytest.mark.parametrize("batch_size", [100, 3])
def test_the_same_ids_in_two_regions_are_two_members_two_visits_and_two_payments(database, batch_size):
    # With 100, one batch holds both regions' events: every lookup (member, visit, payment) is by region too.
    member, visit_id, payment_id = "M-SAME", "V-SAME", "P-SAME"
    events = [
        b.enrolled(member, b.NANJING, on="2023-01-01"),
        b.contribution(member, b.NANJING, "2023-01", "5000.00"),
        b.visit(member, b.NANJING, on="2023-03-02", visit_id=visit_id, items=[b.line("800.00")]),
        b.payment(member, b.NANJING, "20.00", on="2023-03-03", payment_id=payment_id),
        b.enrolled(member, b.WEIHAI, on="2023-02-01"),
        b.contribution(member, b.WEIHAI, "2023-02", "6000.00"),
        b.visit(member, b.WEIHAI, on="2023-03-04", visit_id=visit_id, items=[b.line("300.00")]),
        b.reversed_visit(member, b.NANJING, visit_id, on="2023-03-05"),
        b.payment(member, b.WEIHAI, "20.00", on="2023-03-06", payment_id=payment_id),
        b.visit(member, b.WEIHAI, on="2023-03-07", visit_id="V-LATER", items=[b.line("900.00")]),
    ]
    lines = b.lines(*events)
    offline = settle_lines(lines)
    assert len(records(offline, "settlement_id")) == 4  # both V-SAME, the reversal of Nanjing's, V-LATER
    assert not [o for o in offline if "rejected" in o]
    _, published = ingest(database, lines, batch_size=batch_size)
    assert _without_seq(published) == _without_seq(offline)
    states = fetch(database, "SELECT region FROM member_state WHERE member_id = $1 ORDER BY region", member)
    assert [row[0] for row in states] == sorted([b.NANJING, b.WEIHAI])

    # A visit parked for Weihai's member waits through the same id's enrolment in Nanjing.
    early = b.visit("M-TWICE", b.WEIHAI, on="2023-03-01", visit_id="V-EARLY")
    _, parked = ingest(database, b.lines(early, b.enrolled("M-TWICE", b.NANJING)), batch_size=batch_size)
    assert [o.get("parked") for o in parked] == [early["event_id"]]  # an enrolment publishes nothing
    assert not records(parked, "settlement_id")
    _, released = ingest(database, b.lines(b.enrolled("M-TWICE", b.WEIHAI)), batch_size=batch_size)
    assert [o["visit_id"] for o in records(released, "settlement_id")] == ["V-EARLY"]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_batch_of_repeats_does_not_hide_the_closed_years_from_the_batches_after_it(database, batch_size):
    """The batch after one that settled nothing is read through what that one carried: the closed years too."""
    b.fresh()
    enrolment = b.enrolled("M1", b.NINGXIA, on="2023-06-01")
    ingest(database, [b.as_line(enrolment), b.as_line(b.year_closed(b.NINGXIA, 2023))])
    late = b.visit("M1", b.NINGXIA, on="2023-12-20")  # in the closed year
    stats, published = ingest(database, [b.as_line(enrolment), b.as_line(late)], batch_size=batch_size)
    assert stats.duplicates == 1 and stats.resettled == 0
    assert [(r["rejected"], r["reason"]) for r in records(published, "rejected")] == [(late["event_id"], "year_closed")]


def test_a_reversal_in_a_later_batch_pays_the_account_holder_back(database):
    """The reversal's batch names only the beneficiary: the account holder who paid is read for it."""
    b.fresh()
    paid = b.visit(
        "SPOUSE", b.WEIHAI, on="2024-03-05", items=[b.line("400.00")], level=1, grade=None, account=True, payer="HOLDER"
    )
    setup = [
        b.enrolled("HOLDER", b.WEIHAI, on="2023-01-01"),
        b.contribution("HOLDER", b.WEIHAI, "2024-03", "8000.00"),
        b.enrolled("SPOUSE", b.WEIHAI, on="2023-01-01", person_type="resident_tier1"),
        b.aid_authorized("HOLDER", b.WEIHAI, "SPOUSE", relation="spouse", on="2024-03-02"),
    ]

    def balance():
        query = "SELECT state->>'balance' FROM member_state WHERE member_id = 'HOLDER'"
        return fetch(database, query)[0][0]

    ingest(database, [b.as_line(e) for e in setup])
    before = balance()
    _, published = ingest(database, [b.as_line(paid)])
    spent = [r for r in published if r.get("member_id") == "HOLDER" and "movement_id" in r]
    assert spent and balance() != before, "the visit was paid from the holder's account"
    _, published = ingest(
        database, [b.as_line(b.reversed_visit("SPOUSE", b.WEIHAI, paid["visit_id"], on="2024-03-06"))]
    )
    assert records(published, "settlement_id") and not records(published, "rejected")
    assert balance() == before
    assert verify(database).ok


def test_the_largest_amounts_the_contract_accepts_are_stored_exactly(database):
    """An amount just below 10**15 yuan is valid input: it, and the sums it makes (a balance, a member's year),
    are written to the ledger and the projections to the fen, not refused by a column at commit."""
    from decimal import Decimal

    b.fresh()
    largest = "999999999999999.99"
    # A deployment that lifts the plausibility limits (policies.limits) to what the contract accepts.
    widest = "\n".join(
        [
            '[policy."320100-2023".limits]',
            f'contribution_base_max = "{largest}"',
            f'external_fund_payment_max = "{largest}"',
        ]
    )
    lines = [
        b.as_line(e)
        for e in (
            b.enrolled("BIG", b.NANJING, on="2023-01-01"),
            b.contribution("BIG", b.NANJING, "2023-02", largest, employer="0.00"),
            b.contribution("BIG", b.NANJING, "2023-03", largest, employer="0.00"),
            b.external_fund("BIG", b.NANJING, largest, on="2023-04-01"),
            b.external_fund("BIG", b.NANJING, largest, on="2023-05-01"),
        )
    ]
    stats, published = ingest(database, lines, widest)
    assert stats.appended == 5 and stats.rejected == 0
    (balance,) = fetch(database, "SELECT balance_after FROM ledger_movements ORDER BY seq DESC LIMIT 1")[0]
    external, year_balance = fetch(database, "SELECT external_fund_paid, balance FROM member_year WHERE year = 2023")[0]
    assert external == Decimal(largest) * 2  # past what 16 digits hold
    assert year_balance == balance > 0
    assert verify(database).ok


def _conflict_stream():
    b.fresh()
    enrolment = b.enrolled("REUSE", b.NANJING, on="2023-01-01")
    visit = b.visit("REUSE", b.NANJING, on="2023-03-01", items=[b.line("300.00")])
    changed = {**visit, "items": [{**visit["items"][0], "amount": "900.00"}]}
    return enrolment, visit, changed


def test_a_different_event_under_an_id_already_recorded_is_refused_and_kept(database):
    enrolment, visit, changed = _conflict_stream()
    ingest(database, [b.as_line(enrolment), b.as_line(visit)])
    stats, published = ingest(database, [b.as_line(changed)])
    assert stats.rejected == 1 and stats.duplicates == 0 and stats.appended == 0
    (refused,) = records(published, "rejected")
    assert refused["rejected"] == visit["event_id"] and refused["reason"] == "event_id_conflict"
    assert "items" in refused["detail"]
    (kept,) = fetch(database, "SELECT seq, event_id, reason, payload FROM ledger_rejections")
    assert kept["seq"] is None and kept["reason"] == "event_id_conflict" and '"900.00"' in kept["payload"]

    # the same conflicting bytes again: acknowledged, not refused twice; the original again: a plain repeat
    stats, published = ingest(database, [b.as_line(changed), b.as_line(visit)])
    assert stats.duplicates == 2 and not published
    # the original written another way (money without its decimals) is the same event
    respelled = {**visit, "items": [{**visit["items"][0], "amount": "300"}]}
    stats, published = ingest(database, [b.as_line(respelled)])
    assert stats.duplicates == 1 and not published
    assert fetch(database, "SELECT count(*) FROM ledger_rejections")[0][0] == 1
    (fund,) = fetch(database, "SELECT sum(fund_paid) FROM ledger_settlements")[0]
    assert verify(database).ok and fund < 300


@pytest.mark.parametrize("batch_size", [1, 10], ids=["read through the batch before", "one batch"])
def test_a_conflicting_repeat_is_refused_within_a_run_and_a_parked_event_keeps_waiting(database, batch_size):
    enrolment, visit, changed = _conflict_stream()
    stats, published = ingest(
        database, [b.as_line(visit), b.as_line(changed), b.as_line(enrolment)], batch_size=batch_size
    )
    assert stats.parked == 1 and stats.rejected == 1
    assert [r["reason"] for r in records(published, "rejected")] == ["event_id_conflict"]
    (settled,) = records(published, "settlement_id")
    assert settled["total_amount"] == "300.00"
    assert verify(database).ok


def test_settle_refuses_a_conflicting_repeat_as_ingest_does(database):
    enrolment, visit, changed = _conflict_stream()
    lines = [b.as_line(e) for e in (enrolment, visit, changed, visit, changed)]
    offline = settle_lines(lines)
    assert [r["reason"] for r in records(offline, "rejected")] == ["event_id_conflict"]
    stats, published = ingest(database, lines)
    assert _without_seq(published) == _without_seq(offline)


def test_input_with_a_nul_character_is_refused_and_kept_escaped(database):
    """PostgreSQL's text refuses NUL; the refusal keeps the input with NUL written as \\u0000, and the same input
    again is a repeat of it."""
    raw = "\x00\x00\x00\x00\x07binary"
    stats, published = ingest(database, [raw, raw])
    assert stats.rejected == 1 and stats.duplicates == 1
    (kept,) = fetch(database, "SELECT payload FROM ledger_rejections")
    assert kept["payload"] == "\\u0000" * 4 + "\x07binary"
    stats, _ = ingest(database, [raw])
    assert stats.duplicates == 1 and stats.rejected == 0


def test_a_year_close_no_one_is_handed_the_records_of_counts_them_and_holds_none(pg_server, monkeypatch):
    """A year close publishes a record for each member its region's incentives evaluated. With no one to hand them
    to (`ingest --quiet`; serve, whose relay publishes from the outbox), they are counted as written instead of held
    until the commit: memory that grew with the members of the region. Counted, they are what was handed."""
    import asyncio

    from ledger import service as service_module
    from ledger.intake import from_lines
    from ledger.pipeline import YEAR_CLOSE, Pipeline

    closes: list[Pipeline] = []

    class Watched(Pipeline):
        async def run(self, items) -> None:
            await super().run(items)
            if any(item.event is not None and item.event.event_type == YEAR_CLOSE for item in items):
                closes.append(self)

    monkeypatch.setattr(service_module, "Pipeline", Watched)
    lines = example_lines("nanjing")
    assert any(YEAR_CLOSE in line for line in lines)
    outcomes = []
    for handed in (True, False):
        name, db = pg_server.fresh()
        try:
            published: list[dict] = []

            async def run(db=db, published=published, handed=handed):
                async with service_module.LedgerService(db, "") as service:
                    return await service.ingest(from_lines(lines, "test"), published.extend if handed else None)

            outcomes.append((asyncio.run(run()), published))
        finally:
            pg_server.drop(name)
    (handed_stats, handed_records), (quiet_stats, quiet_records) = outcomes
    assert quiet_stats == handed_stats and quiet_records == []
    handed_close, quiet_close = closes
    assert handed_close.published and all(r in handed_records for r in handed_close.published)
    assert quiet_close.published == []
