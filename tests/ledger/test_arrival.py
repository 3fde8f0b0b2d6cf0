"""An event dated later than it arrives is refused before anything settles it: a year close or an enrolment sent
ahead of its time is `implausible` (rule occurred_at_ahead), kept with no ledger position, never applied, and the
year stays open (ledger.arrival, docs/policies-limits.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from ledger.cli import app
from tests import builders as b
from tests.ledger.helpers import fetch, ingest, records, verify

NJ = b.NANJING
BEIJING = timedelta(hours=8)
MID_2023 = datetime(2023, 9, 1, tzinfo=UTC)


def _members():
    b.fresh()
    return [
        b.enrolled("NJ-A", NJ, on="2022-12-01"),
        b.contribution("NJ-A", NJ, "2023-07", "9000.00"),
        b.visit("NJ-A", NJ, on="2023-02-01", items=[b.line("300.00")]),
    ]


def _refusal(published: list[dict], event: dict) -> dict:
    [refused] = records(published, "rejected")
    assert refused["rejected"] == event["event_id"]
    return refused


def _unsequenced(database, event: dict) -> list:
    return fetch(
        database,
        "SELECT reason, detail FROM ledger_rejections WHERE seq IS NULL AND event_id = $1",
        event["event_id"],
    )


def test_a_year_close_dated_after_it_arrives_is_refused_kept_unsequenced_and_the_year_stays_open(database):
    ingest(database, [b.as_line(e) for e in _members()], now=MID_2023)
    appended = fetch(database, "SELECT count(*) FROM ledger_events")[0][0]
    close = b.year_closed(NJ, 2023)  # dated 2024-01-01 01:00 Beijing time, sent in September 2023

    stats, published = ingest(database, [b.as_line(close)], now=MID_2023)

    refused = _refusal(published, close)
    assert refused["reason"] == "implausible" and "rule occurred_at_ahead" in refused["detail"]
    assert "MEDLEDGER_MAX_CLOCK_SKEW_SECONDS" in refused["detail"]
    assert [tuple(row)[0] for row in _unsequenced(database, close)] == ["implausible"]
    assert stats.appended == 0 and fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == appended
    assert fetch(database, "SELECT count(*) FROM closed_years")[0][0] == 0
    assert fetch(database, "SELECT count(*) FROM ledger_incentives")[0][0] == 0
    # the rest of 2023 is still settled as usual
    later = b.visit("NJ-A", NJ, on="2023-09-10", items=[b.line("300.00")])
    _, published = ingest(database, [b.as_line(later)], now=MID_2023 + timedelta(days=10))
    assert b.settled(published, later)["fund_paid"] and not records(published, "rejected")
    assert verify(database).ok


def test_an_event_ahead_of_its_arrival_by_less_than_the_tolerated_skew_is_settled(database):
    ingest(database, [b.as_line(e) for e in _members()], now=MID_2023)
    close = b.year_closed(NJ, 2023)
    occurred = datetime(2024, 1, 1, 1, 0, tzinfo=UTC) - BEIJING

    _, early = ingest(database, [b.as_line(close)], now=occurred - timedelta(seconds=601))
    assert _refusal(early, close)["reason"] == "implausible"
    # the same close, sent again when it is due (its arrival 9 minutes before its occurred_at: clocks differ)
    _, due = ingest(database, [b.as_line(close)], now=occurred - timedelta(seconds=540))
    assert not records(due, "rejected") and records(due, "incentive")
    assert fetch(database, "SELECT region, year FROM closed_years") == [(NJ, 2023)]
    assert verify(database).ok


def test_an_enrolment_sent_ahead_of_its_date_is_refused_and_enrols_no_one(database):
    b.fresh()
    enrolment = b.enrolled("NJ-F", NJ, on="2023-11-01")  # 61 days after it arrives

    _, published = ingest(database, [b.as_line(enrolment)], now=MID_2023)

    refused = _refusal(published, enrolment)
    assert refused["reason"] == "implausible" and "occurred_at 2023-11-01T10:00:00+08:00" in refused["detail"]
    assert fetch(database, "SELECT count(*) FROM member_state")[0][0] == 0
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == 0


def test_ingest_reads_the_tolerated_skew_from_its_setting(database, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    b.fresh()
    soon = datetime.now(UTC) + timedelta(minutes=5)
    enrolment = b.enrolled("NJ-S", NJ, on=soon.astimezone(UTC).date().isoformat(), at=soon.strftime("%H:%M:%S"))
    enrolment["occurred_at"] = soon.isoformat(timespec="seconds")
    far = b.year_closed(b.NINGXIA, 2030)  # dated 2031-01-01
    events = tmp_path / "events.jsonl"
    events.write_text(b.as_line(enrolment) + "\n" + b.as_line(far) + "\n", encoding="utf-8")

    monkeypatch.setenv("MEDLEDGER_MAX_CLOCK_SKEW_SECONDS", "60")
    strict = CliRunner().invoke(app, ["ingest", str(events)])
    assert strict.exit_code == 0, strict.output
    refused = {r["rejected"]: r["reason"] for r in map(json.loads, strict.stdout.splitlines()) if "rejected" in r}
    assert refused == {enrolment["event_id"]: "implausible", far["event_id"]: "implausible"}

    monkeypatch.delenv("MEDLEDGER_MAX_CLOCK_SKEW_SECONDS")  # the default: 600 s
    default = CliRunner().invoke(app, ["ingest", str(events)])
    assert default.exit_code == 0, default.output
    ids = [enrolment["event_id"], far["event_id"]]
    appended = fetch(database, "SELECT event_id FROM ledger_events WHERE event_id = ANY($1::text[])", ids)
    assert [tuple(row) for row in appended] == [(enrolment["event_id"],)]
    assert [tuple(r) for r in fetch(database, "SELECT member_id FROM member_state")] == [("NJ-S",)]
