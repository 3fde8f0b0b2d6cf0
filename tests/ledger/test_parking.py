"""Events for a member not yet enrolled wait for the enrolment; too old, they are refused. Nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests import builders as b
from tests.ledger.helpers import PRODUCED, fetch, ingest, records, sweep, verify, waiting

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def _late_enrolment_stream():
    b.fresh()
    contribution = b.contribution("LATE", b.NANJING, "2023-03", "9000.00")
    visit = b.visit("LATE", b.NANJING, on="2023-03-20", items=[b.line("600.00")], account=True)
    reversal = b.reversed_visit("LATE", b.NANJING, visit["visit_id"], on="2023-03-21")
    enrolment = b.enrolled("LATE", b.NANJING, on="2023-01-01")
    return contribution, visit, reversal, enrolment


def test_parked_events_settle_in_arrival_order_when_the_enrolment_arrives_later(database):
    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    stats, published = ingest(database, [b.as_line(e) for e in (contribution, visit, reversal)], now=T0)
    assert stats.parked == 3 and not records(published, "settlement_id") and not records(published, "rejected")
    assert waiting(database) == [contribution["event_id"], visit["event_id"], reversal["event_id"]]
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == 0

    stats, published = ingest(database, [b.as_line(enrolment)], now=T0 + timedelta(days=1))
    assert waiting(database) == []
    assert fetch(database, "SELECT count(*) FROM parked_events")[0][0] == 3  # kept: where and when they waited
    order = [r["event_id"] for r in fetch(database, f"SELECT event_id FROM {PRODUCED} ORDER BY seq")]
    assert order == [enrolment["event_id"], contribution["event_id"], visit["event_id"], reversal["event_id"]]
    settled, reversed_ = records(published, "settlement_id")
    assert settled["fund_paid"] == "240.00" and settled["account_paid"] == "180.00"  # 600 × 40%; balance 180
    assert reversed_["reverses"] == settled["settlement_id"]
    assert verify(database).ok


def test_a_repeat_of_a_parked_event_is_acknowledged_not_parked_twice(database):
    contribution, *_ = _late_enrolment_stream()
    ingest(database, [b.as_line(contribution)], now=T0)
    stats, _ = ingest(database, [b.as_line(contribution)], now=T0)
    assert stats.duplicates == 1 and stats.parked == 0
    assert waiting(database) == [contribution["event_id"]]


def test_parked_and_released_within_one_batch(database):
    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    stats, published = ingest(database, [b.as_line(e) for e in (visit, enrolment)], now=T0, batch_size=10)
    assert records(published, "settlement_id")[0]["visit_id"] == visit["visit_id"]
    assert waiting(database) == []


def test_parked_before_a_year_close_and_released_after_it_in_one_batch(database):
    """The close splits the batch in two segments; the release must still leave nothing waiting, and a later
    sweep must find nothing to refuse."""
    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    close = b.year_closed(b.NANJING, 2022)
    stats, published = ingest(database, [b.as_line(e) for e in (visit, close, enrolment)], now=T0, batch_size=10)
    assert records(published, "settlement_id")[0]["visit_id"] == visit["visit_id"]
    assert waiting(database) == []
    stats, _ = sweep(database, now=T0 + timedelta(days=60), park_ttl=timedelta(days=30))
    assert stats.expired == 0
    assert verify(database).ok


def test_two_sweeps_at_once_refuse_an_expired_event_once(database):
    import threading

    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    ingest(database, [b.as_line(visit)], now=T0)
    results, errors = [], []

    def run():
        try:
            results.append(sweep(database, now=T0 + timedelta(days=40), park_ttl=timedelta(days=30))[0].expired)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(results) == [0, 1]
    assert fetch(database, "SELECT count(*) FROM ledger_rejections")[0][0] == 1


def test_a_parked_event_older_than_the_parking_time_is_refused_with_the_reason(database):
    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    ingest(database, [b.as_line(visit)], now=T0)
    stats, published = sweep(database, now=T0 + timedelta(days=3), park_ttl=timedelta(days=7))
    assert stats.expired == 0 and waiting(database) == [visit["event_id"]]

    stats, published = sweep(database, now=T0 + timedelta(days=8), park_ttl=timedelta(days=7))
    assert stats.expired == 1
    (rejection,) = records(published, "rejected")
    assert rejection["reason"] == "member_not_enrolled" and "parked since" in rejection["detail"]
    (kept,) = fetch(
        database, "SELECT r.reason, e.event_id FROM ledger_rejections r JOIN ledger_events e ON e.seq = r.seq"
    )
    assert kept["event_id"] == visit["event_id"]
    assert waiting(database) == []
    assert verify(database).ok

    # the enrolment arriving afterwards finds nothing waiting: the visit was refused, not lost
    stats, published = ingest(database, [b.as_line(enrolment)], now=T0 + timedelta(days=9))
    assert not records(published, "settlement_id")


def test_ingest_sweeps_before_it_reads(database):
    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    ingest(database, [b.as_line(visit)], now=T0, park_ttl=timedelta(days=1))
    stats, published = ingest(database, [b.as_line(enrolment)], now=T0 + timedelta(days=2), park_ttl=timedelta(days=1))
    assert stats.expired == 1
    assert records(published, "rejected")[0]["rejected"] == visit["event_id"]


def test_a_corrected_resend_of_refused_input_waits_and_settles(database):
    """The producer's first try was malformed and refused; its corrected resend, under the same event id, is a
    new event: it waits for the enrolment like any other and settles with it."""
    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    stats, published = ingest(database, [b.as_line({**visit, "surprise": 1})], now=T0)
    assert stats.rejected == 1 and records(published, "rejected")[0]["rejected"] == visit["event_id"]

    stats, _ = ingest(database, [b.as_line(visit)], now=T0)
    assert stats.parked == 1 and stats.duplicates == 0

    stats, published = ingest(database, [b.as_line(enrolment)], now=T0 + timedelta(days=1))
    assert [r["visit_id"] for r in records(published, "settlement_id")] == [visit["visit_id"]]
    stats, _ = sweep(database, now=T0 + timedelta(days=60), park_ttl=timedelta(days=30))
    assert stats.expired == 0
    assert verify(database).ok


def test_a_parked_event_that_no_longer_decodes_is_refused_once_when_its_member_enrols(database):
    """Parked under an earlier version of the contract, its bytes no longer read: the enrolment refuses it as
    unreadable, with its own bytes kept, and it waits no more (no later batch or sweep meets it again)."""

    from ledger.chain import text_digest

    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    payload = _parked_unreadable(database, visit)
    stats, published = ingest(database, [b.as_line(enrolment)], now=T0 + timedelta(days=1))
    (refused,) = records(published, "rejected")
    assert refused["rejected"] == visit["event_id"] and refused["reason"] == "invalid_event"
    (kept,) = fetch(database, "SELECT seq, event_id, payload, payload_digest FROM ledger_rejections")
    assert kept["seq"] is None and kept["event_id"] == visit["event_id"]
    assert kept["payload"] == payload and kept["payload_digest"] == text_digest(payload)

    stats, published = ingest(database, [b.as_line(contribution)], now=T0 + timedelta(days=2))
    assert not records(published, "rejected")
    stats, _ = sweep(database, now=T0 + timedelta(days=60), park_ttl=timedelta(days=30))
    assert stats.expired == 0
    assert fetch(database, "SELECT count(*) FROM ledger_rejections")[0][0] == 1
    assert verify(database).ok


def _parked_unreadable(database, visit: dict) -> str:
    """`visit` parked for member LATE under an earlier version of the contract: bytes this one no longer reads."""
    import json

    from tests.ledger.helpers import execute

    payload = json.dumps({**visit, "retired_field": "x"}, sort_keys=True, separators=(",", ":"))
    execute(
        database,
        "INSERT INTO parked_events (event_id, region, member_id, payload, source, parked_at, arrival) "
        "VALUES ($1, $2, $3, $4, 'old:1', $5, 1)",
        visit["event_id"],
        b.NANJING,
        "LATE",
        payload,
        T0,
    )
    return payload


def test_a_parked_event_that_no_longer_decodes_is_refused_when_the_batch_before_parked_for_the_same_member(
    database,
):
    """Batch by batch, the enrolment's batch reads through what the batch before parked for its member, beside
    what already waited: a parked event whose bytes no longer decode is still refused as unreadable, and what the
    batch before parked is released after the enrolment."""

    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    _parked_unreadable(database, visit)
    stats, published = ingest(database, [b.as_line(contribution), b.as_line(enrolment)], now=T0, batch_size=1)
    (refused,) = records(published, "rejected")
    assert refused["rejected"] == visit["event_id"] and refused["reason"] == "invalid_event"
    order = [r["event_id"] for r in fetch(database, f"SELECT event_id FROM {PRODUCED} ORDER BY seq")]
    assert order == [enrolment["event_id"], contribution["event_id"]]
    stats, _ = sweep(database, now=T0 + timedelta(days=60), park_ttl=timedelta(days=30))
    assert stats.expired == 0  # refused, it waits no more
    assert fetch(database, "SELECT count(*) FROM ledger_rejections")[0][0] == 1
    assert verify(database).ok


@pytest.mark.parametrize("together", [False, True], ids=["two runs", "one run, batch by batch"])
def test_an_earlier_refusal_of_the_same_bytes_does_not_end_a_later_parked_events_wait(database, together):
    """The same bytes were refused once before (as unprocessable, say) and then sent again: the parked copy is a
    new arrival, released by the enrolment like any other."""
    from ledger.chain import canonical, text_digest
    from ledger.contract import decode_line
    from tests.ledger.helpers import execute

    contribution, visit, reversal, enrolment = _late_enrolment_stream()
    payload = canonical(decode_line(b.as_line(visit)))
    execute(
        database,
        "INSERT INTO ledger_rejections (seq, event_id, source, reason, detail, payload, payload_digest) "
        "VALUES (NULL, $1, 'kafka:events/0/5', 'unprocessable', 'failed three times', $2, $3)",
        visit["event_id"],
        payload,
        text_digest(payload),
    )
    if together:
        stats, published = ingest(database, [payload, b.as_line(enrolment)], now=T0, batch_size=1)
    else:
        stats, _ = ingest(database, [payload], now=T0)
        assert stats.parked == 1
        stats, published = ingest(database, [b.as_line(enrolment)], now=T0 + timedelta(days=1))
    assert [r["visit_id"] for r in records(published, "settlement_id")] == [visit["visit_id"]]
