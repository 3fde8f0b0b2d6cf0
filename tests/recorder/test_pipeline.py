"""The pipeline's own behaviour (`ledger.pipeline`, through the service), on the memory recorder: no database.
Parking and release on enrolment, a year close in chunks, reversals, rejections, a failed batch undone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import ledger.pipeline
from ledger.intake import from_lines
from ledger.memory_recorder import MemoryRecorder, MemorySession
from ledger.service import LedgerService
from ledger.streams import base
from tests import builders as b
from tests.ledger.helpers import example_lines, records

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def ingest(recorder: MemoryRecorder, lines, now=T0, batch_size=50, park_ttl=timedelta(days=30)):
    published: list[dict] = []

    async def run():
        service = LedgerService(None, batch_size=batch_size, park_ttl=park_ttl, clock=lambda: now, recorder=recorder)
        async with service:
            return await service.ingest(from_lines(lines, "test"), published.extend)

    return asyncio.run(run()), published


def sweep(recorder: MemoryRecorder, now, park_ttl):
    published: list[dict] = []

    async def run():
        async with LedgerService(None, park_ttl=park_ttl, clock=lambda: now, recorder=recorder) as service:
            return await service.sweep(on_published=published.extend)

    return asyncio.run(run()), published


def waiting(recorder: MemoryRecorder) -> list[str]:
    """Event ids still waiting for an enrolment, in arrival order."""
    return [row[0] for row in recorder.tables.parked if row[0] not in recorder.tables.event_index]


def in_ledger(recorder: MemoryRecorder) -> list[str]:
    return [event.event_id for event in recorder.tables.events if event.event_type != "ledger.parameters_adopted"]


def late_enrolment():
    b.fresh()
    contribution = b.contribution("LATE", b.NANJING, "2023-03", "9000.00")
    visit = b.visit("LATE", b.NANJING, on="2023-03-20", items=[b.line("600.00")], account=True)
    reversal = b.reversed_visit("LATE", b.NANJING, visit["visit_id"], on="2023-03-21")
    enrolment = b.enrolled("LATE", b.NANJING, on="2023-01-01")
    return contribution, visit, reversal, enrolment


def test_parked_events_settle_in_arrival_order_when_the_enrolment_arrives_later():
    recorder = MemoryRecorder()
    contribution, visit, reversal, enrolment = late_enrolment()
    stats, published = ingest(recorder, [b.as_line(e) for e in (contribution, visit, reversal)])
    assert stats.parked == 3 and not records(published, "settlement_id") and not records(published, "rejected")
    assert waiting(recorder) == [contribution["event_id"], visit["event_id"], reversal["event_id"]]
    assert in_ledger(recorder) == []

    stats, published = ingest(recorder, [b.as_line(enrolment)], now=T0 + timedelta(days=1))
    assert waiting(recorder) == [] and len(recorder.tables.parked) == 3  # kept: where and when they waited
    assert in_ledger(recorder) == [e["event_id"] for e in (enrolment, contribution, visit, reversal)]
    settled, reversed_ = records(published, "settlement_id")
    assert settled["fund_paid"] == "240.00" and settled["account_paid"] == "180.00"  # 600 × 40%; balance 180
    assert reversed_["reverses"] == settled["settlement_id"]
    seqs = [event.seq for event in recorder.tables.events]
    assert seqs == [base(320100) + n for n in range(1, len(seqs) + 1)]  # gap-free in Nanjing's stream


def test_a_repeat_of_a_parked_event_is_acknowledged_not_parked_twice():
    recorder = MemoryRecorder()
    contribution, *_ = late_enrolment()
    ingest(recorder, [b.as_line(contribution)])
    stats, _ = ingest(recorder, [b.as_line(contribution)])
    assert stats.duplicates == 1 and stats.parked == 0
    assert waiting(recorder) == [contribution["event_id"]]


def test_parked_before_a_year_close_and_released_after_it_in_one_batch():
    recorder = MemoryRecorder()
    contribution, visit, reversal, enrolment = late_enrolment()
    close = b.year_closed(b.NANJING, 2022)
    stats, published = ingest(recorder, [b.as_line(e) for e in (visit, close, enrolment)], batch_size=10)
    assert records(published, "settlement_id")[0]["visit_id"] == visit["visit_id"]
    assert waiting(recorder) == []
    stats, _ = sweep(recorder, now=T0 + timedelta(days=60), park_ttl=timedelta(days=30))
    assert stats.expired == 0


def test_a_parked_event_older_than_the_parking_time_is_refused_with_the_reason():
    recorder = MemoryRecorder()
    contribution, visit, reversal, enrolment = late_enrolment()
    ingest(recorder, [b.as_line(visit)])
    stats, _ = sweep(recorder, now=T0 + timedelta(days=3), park_ttl=timedelta(days=7))
    assert stats.expired == 0 and waiting(recorder) == [visit["event_id"]]
    stats, published = sweep(recorder, now=T0 + timedelta(days=8), park_ttl=timedelta(days=7))
    assert stats.expired == 1
    (rejection,) = records(published, "rejected")
    assert rejection["reason"] == "member_not_enrolled" and "parked since" in rejection["detail"]
    (kept,) = recorder.tables.rejections
    at = recorder.tables.seq_index[kept[1]]
    assert recorder.tables.events[at].event_id == visit["event_id"]  # refused at its ledger position
    stats, published = ingest(recorder, [b.as_line(enrolment)], now=T0 + timedelta(days=9))
    assert not records(published, "settlement_id")  # refused, not lost, and not settled twice


def test_a_year_close_walks_the_members_a_chunk_at_a_time_with_the_same_result(monkeypatch):
    lines = example_lines("nanjing", "weihai")
    whole = ingest(MemoryRecorder(), lines, batch_size=7)[1]
    assert records(whole, "incentive"), "the examples' year closes evaluate incentives"
    monkeypatch.setattr(ledger.pipeline, "CLOSE_CHUNK", 1)
    recorder = MemoryRecorder()
    chunked = ingest(recorder, lines, batch_size=7)[1]
    assert chunked == whole
    assert recorder.tables.closed_years


def test_a_reversal_in_a_later_batch_pays_the_account_holder_back():
    recorder = MemoryRecorder()
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
        return recorder.tables.member_state[(b.WEIHAI, "HOLDER")][0].split('"balance":"', 1)[1].split('"', 1)[0]

    later = datetime(2024, 4, 1, tzinfo=UTC)  # the events arrive after they happened
    ingest(recorder, [b.as_line(e) for e in setup], now=later)
    before = balance()
    _, published = ingest(recorder, [b.as_line(paid)], now=later)
    assert [r for r in published if r.get("member_id") == "HOLDER" and "movement_id" in r] and balance() != before
    _, published = ingest(
        recorder, [b.as_line(b.reversed_visit("SPOUSE", b.WEIHAI, paid["visit_id"], on="2024-03-06"))], now=later
    )
    assert records(published, "settlement_id") and not records(published, "rejected")
    assert balance() == before


def test_rejections_are_kept_tied_to_their_event_or_as_received():
    recorder = MemoryRecorder()
    b.fresh()
    early = b.visit("M1", b.NINGXIA, on="2023-05-31")  # before 000 took effect
    lines = [b.as_line(b.enrolled("M1", b.NINGXIA)), b.as_line(early), "{not json"]
    stats, published = ingest(recorder, lines)
    assert stats.rejected == 2
    by_position = [(row[1], row[4]) for row in recorder.tables.rejections]
    position = recorder.tables.events[recorder.tables.event_index[early["event_id"]]].seq
    assert (position, "policy_not_configured") in by_position  # at the event's ledger position
    assert any(seq is None for seq, _ in by_position)  # unreadable input: kept as received, no position
    stats, _ = ingest(recorder, ["{not json"])  # the same bytes again: acknowledged, not kept twice
    assert stats.duplicates == 1 and len(recorder.tables.rejections) == 2


def test_a_batch_that_fails_half_way_leaves_nothing_behind(monkeypatch):
    recorder = MemoryRecorder()
    ingest(recorder, example_lines("nanjing")[:5])
    before = (list(recorder.tables.events), dict(recorder.tables.member_state), list(recorder.tables.outbox))

    def failing(self, journal, rows, registry, digest):
        raise RuntimeError("the write failed half way")

    monkeypatch.setattr(MemorySession, "_projections", failing)
    with pytest.raises(RuntimeError, match="half way"):
        ingest(recorder, example_lines("nanjing")[5:30])
    assert (recorder.tables.events, recorder.tables.member_state, recorder.tables.outbox) == before
    monkeypatch.undo()
    stats, _ = ingest(recorder, example_lines("nanjing")[5:30])
    assert stats.appended == 25


def test_a_service_used_before_it_is_open_says_so():
    """Its recorder is the one given or, on entering, the database's: a call before either names the missing step
    instead of failing on an attribute of None."""
    service = LedgerService(None)
    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(service.keeps_signatures())
