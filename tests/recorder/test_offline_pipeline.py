"""`settle` is the ledger's pipeline run on a ledger held in memory (`ledger.offline`), and repeats are decided by
one implementation (`ledger.repeats`) for settle and the service alike. No database."""

from __future__ import annotations

import pytest

import ledger.pipeline
from ledger.intake import decode, from_lines
from ledger.memory_recorder import MemoryRecorder
from ledger.offline import settle_items, settle_lines
from ledger.pipeline import Pipeline, run_to_end
from ledger.repeats import Repeats
from tests import builders as b
from tests.ledger.helpers import records
from tests.recorder.test_pipeline import ingest


def _item(event: dict | str, line: int = 1):
    text = event if isinstance(event, str) else b.as_line(event)
    return decode(text, f"input:{line}", line, line)


def test_settle_runs_the_ledgers_pipeline(monkeypatch):
    b.fresh()
    runs: list[int] = []
    run = Pipeline.run

    async def counted(self, items):
        runs.append(len(items))
        await run(self, items)

    monkeypatch.setattr(Pipeline, "run", counted)
    enrolment = b.enrolled("M1", b.NANJING)
    printed = settle_lines(b.lines(enrolment, b.visit("M1", b.NANJING), b.visit("M1", b.NANJING)))
    assert sum(runs) == 3
    assert len(records(printed, "settlement_id")) == 2


def test_settle_and_ingest_decide_repeats_with_the_same_code(monkeypatch):
    b.fresh()
    asked: list[str] = []
    is_repeat = Repeats.is_repeat

    def counted(self, item, elsewhere=None):
        asked.append(item.source.split(":")[0])
        return is_repeat(self, item, elsewhere)

    monkeypatch.setattr(Repeats, "is_repeat", counted)
    enrolment = b.enrolled("M1", b.NANJING)
    lines = b.lines(enrolment, enrolment)
    settle_lines(lines)
    stats, _ = ingest(MemoryRecorder(), lines)
    assert asked == ["input", "input", "test", "test"]
    assert stats.duplicates == 1


def test_an_event_for_a_member_not_enrolled_is_refused_by_the_rules_offline_where_ingest_parks_it():
    b.fresh()
    visit = b.visit("LATE", b.NANJING, on="2023-03-20")
    enrolment = b.enrolled("LATE", b.NANJING, on="2023-01-01")
    printed = settle_lines(b.lines(visit, enrolment))
    (refused,) = records(printed, "rejected")
    assert refused["rejected"] == visit["event_id"] and refused["reason"] == "member_not_enrolled"
    assert not [r for r in printed if "parked" in r] and not records(printed, "settlement_id")

    _, published = ingest(MemoryRecorder(), b.lines(visit, enrolment))
    assert [r["parked"] for r in published if "parked" in r] == [visit["event_id"]]
    assert len(records(published, "settlement_id")) == 1


def _two_regions_and_a_close():
    b.fresh()
    return [
        b.enrolled("NJ1", b.NANJING, on="2023-01-01", contribution_base="8000.00"),
        b.enrolled("NJ2", b.NANJING, on="2023-01-01", contribution_base="6000.00"),
        b.enrolled("NJ3", b.NANJING, on="2023-01-01", contribution_base="7000.00"),
        b.enrolled("WH1", b.WEIHAI, on="2023-01-01"),
        b.visit("NJ1", b.NANJING, on="2023-05-01", items=[b.line("300.00")]),
        b.year_closed(b.NANJING, 2023),
        b.visit("WH1", b.WEIHAI, on="2024-01-05", items=[b.line("200.00")]),
        b.visit("NJ2", b.NANJING, on="2024-01-06", items=[b.line("150.00")]),
    ]


def test_a_year_close_leaves_the_held_book_whole_for_every_region():
    printed = settle_lines(b.lines(*_two_regions_and_a_close()))
    assert not records(printed, "rejected")
    assert {r["member_id"] for r in records(printed, "settlement_id")} == {"NJ1", "WH1", "NJ2"}
    assert [r["member_id"] for r in printed if "incentive" in r] == ["NJ1", "NJ2", "NJ3"]


def test_a_year_close_evaluated_a_member_at_a_time_prints_what_one_pass_prints(monkeypatch):
    whole = settle_lines(b.lines(*_two_regions_and_a_close()))
    monkeypatch.setattr(ledger.pipeline, "CLOSE_CHUNK", 1)
    assert settle_lines(b.lines(*_two_regions_and_a_close())) == whole


def test_settling_that_waits_for_a_read_is_refused_without_an_event_loop():
    class Pending:
        def __await__(self):
            yield "a read from a database"

    async def reading() -> None:
        await Pending()

    with pytest.raises(RuntimeError, match="a read from a database"):
        run_to_end(reading())


def test_repeats_acknowledge_the_same_event_in_any_spelling_and_refuse_another_under_its_id():
    b.fresh()
    repeats = Repeats()
    visit = b.visit("M1", b.NANJING, items=[b.line("300.00")])
    respelled = {**visit, "items": [{**visit["items"][0], "amount": "300"}]}
    changed = {**visit, "items": [{**visit["items"][0], "amount": "900.00"}]}
    assert not repeats.is_repeat(_item(visit, 1))
    assert repeats.is_repeat(_item(visit, 2))
    assert repeats.is_repeat(_item(respelled, 3))
    conflict = _item(changed, 4)
    assert not repeats.is_repeat(conflict)  # refused, once
    assert conflict.event is None and conflict.error is not None
    assert conflict.error.reason == "event_id_conflict" and "items" in conflict.error.detail
    assert repeats.is_repeat(_item(changed, 5))  # the same conflicting bytes again
    assert not repeats.is_repeat(_item("not json", 6))
    assert repeats.is_repeat(_item("not json", 7))
    assert repeats.held_text(visit["event_id"]) == b.as_line(visit)


def test_repeats_compare_with_what_the_ledger_records_and_with_what_another_worker_holds():
    b.fresh()
    visit = b.visit("M1", b.NANJING, items=[b.line("300.00")])
    changed = {**visit, "items": [{**visit["items"][0], "amount": "900.00"}]}
    recorded = Repeats()
    recorded.hold_recorded([(visit["event_id"], _item(visit).payload)])
    assert recorded.is_repeat(_item(visit))
    refused = _item(changed)
    assert not recorded.is_repeat(refused) and refused.error is not None
    assert refused.error.reason == "event_id_conflict"

    elsewhere = Repeats()
    assert elsewhere.is_repeat(_item(visit), elsewhere=b.as_line(visit))
    refused = _item(changed)
    assert not elsewhere.is_repeat(refused, elsewhere=b.as_line(visit)) and refused.error is not None


def test_a_conflicting_repeat_refused_in_one_batch_is_a_repeat_in_the_next():
    b.fresh()
    enrolment = b.enrolled("M1", b.NANJING, on="2023-01-01")
    visit = b.visit("M1", b.NANJING, on="2023-03-01", items=[b.line("300.00")])
    changed = {**visit, "items": [{**visit["items"][0], "amount": "900.00"}]}
    recorder = MemoryRecorder()
    ingest(recorder, b.lines(enrolment, visit))
    stats, published = ingest(recorder, b.lines(changed))
    assert stats.rejected == 1 and records(published, "rejected")[0]["reason"] == "event_id_conflict"
    stats, published = ingest(recorder, b.lines(changed, visit))
    assert stats.duplicates == 2 and not published
    assert len(recorder.tables.rejections) == 1


def test_settle_items_from_a_file_keep_their_line_as_position():
    b.fresh()
    enrolment = b.enrolled("M1", b.NANJING)
    printed = list(settle_items(from_lines(["", b.as_line(enrolment), "{", b.as_line(b.visit("M1", b.NANJING))], "in")))
    assert [r.get("rejected") for r in printed[:1]] == [3]
    assert printed[1]["ledger_seq"] == 4  # the line it was read from


def test_a_year_close_of_a_region_without_incentives_still_closes_its_year_offline():
    b.fresh()
    late = b.visit("NX1", b.NINGXIA, on="2023-12-31", at="23:00:00")
    printed = settle_lines(b.lines(b.enrolled("NX1", b.NINGXIA), b.year_closed(b.NINGXIA, 2023), late))
    (refused,) = records(printed, "rejected")
    assert refused["rejected"] == late["event_id"] and refused["reason"] == "year_closed"
