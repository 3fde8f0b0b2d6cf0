"""Replay reads the next batch of events on a connection of its own while the batch before settles
(`Replayer._walk`): the batches are still replayed in order, each once, and a batch that fails stops the replay
with its error, the read under way abandoned, nothing left running."""

from __future__ import annotations

import asyncio

import pytest

from ledger.replay import Replayer, _verify_regions
from tests.ledger.helpers import IM_PARAMETERS, example_lines, execute, fetch, ingest


def test_every_batch_is_replayed_once_in_order_while_the_next_is_read_ahead(database, monkeypatch):
    ingest(database, example_lines("nanjing", "weihai"))
    replayed: list[int] = []
    batch = Replayer._batch

    async def noting(self, audit, rows, what_if, mode, report):
        replayed.extend(row[0] for row in rows)
        await batch(self, audit, rows, what_if, mode, report)

    monkeypatch.setattr(Replayer, "_batch", noting)
    report = asyncio.run(Replayer(database, batch_size=7).verify())
    assert report.ok, report.differences
    assert replayed == [seq for (seq,) in fetch(database, "SELECT seq FROM ledger_events ORDER BY seq")]


def test_a_batch_that_fails_stops_the_replay_with_its_error_and_the_next_verify_runs(database, monkeypatch):
    ingest(database, example_lines("nanjing"))
    batch, calls = Replayer._batch, []

    async def failing(self, audit, rows, what_if, mode, report):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("a batch that fails")
        await batch(self, audit, rows, what_if, mode, report)

    monkeypatch.setattr(Replayer, "_batch", failing)
    with pytest.raises(RuntimeError, match="a batch that fails"):
        asyncio.run(Replayer(database, batch_size=5).verify())
    monkeypatch.setattr(Replayer, "_batch", batch)
    assert asyncio.run(Replayer(database, batch_size=5).verify()).ok


@pytest.mark.parametrize(("set_before", "kept"), [(None, "64MB"), ("128MB", "128MB"), ("16MB", "64MB")])
def test_the_replay_s_shadow_tables_are_kept_in_buffers_of_their_own_size(database, monkeypatch, set_before, kept):
    """The session a replay writes its temporary tables on has at least 64 MB of temporary buffers (8 MB unless
    set, through which a large verify reads its shadow's indexes back page by page); a larger setting of the
    database stays."""
    if set_before is not None:
        (name,) = fetch(database, "SELECT current_database()")[0]
        execute(database, f"ALTER DATABASE \"{name}\" SET temp_buffers = '{set_before}'", owner=True)
    ingest(database, example_lines("nanjing"))
    batch, seen = Replayer._batch, []

    async def showing(self, audit, rows, what_if, mode, report):
        seen.append(await audit.raw.fetchval("SHOW temp_buffers"))
        await batch(self, audit, rows, what_if, mode, report)

    monkeypatch.setattr(Replayer, "_batch", showing)
    assert asyncio.run(Replayer(database, batch_size=50).verify()).ok
    assert seen and set(seen) == {kept}


def _appending(database, monkeypatch, when, lines: list[str], parameters: str = "") -> list:
    """Replay's batches, `lines` ingested meanwhile (under `parameters`) once a batch replayed holds a row `when`
    finds; what that ingest returned, once it has."""
    batch, appended = Replayer._batch, []

    async def appending(self, audit, rows, what_if, mode, report):
        await batch(self, audit, rows, what_if, mode, report)
        if not appended and any(when(row) for row in rows):
            appended.append(await asyncio.to_thread(ingest, database, lines, parameters))

    monkeypatch.setattr(Replayer, "_batch", appending)
    return appended


def test_events_appended_meanwhile_to_a_stream_already_walked_are_replayed_under_the_lock(database, monkeypatch):
    """The walk takes the streams one after another (a stream's positions are a range of its own); what a region
    whose stream it has walked already appends meanwhile is replayed in the last stretch, under the append locks,
    with the rest: the ledger verifies."""
    nanjing, weihai = example_lines("nanjing"), example_lines("weihai")
    half = len(nanjing) // 2
    ingest(database, nanjing[:half] + weihai)
    # settled meanwhile by another writer, into Nanjing's stream, walked already, while the walk is in Weihai's
    appended = _appending(database, monkeypatch, lambda row: row[6] == "371000", nanjing[half:])
    report = asyncio.run(Replayer(database, batch_size=7).verify())
    assert appended and appended[0][0].appended > 0
    assert report.ok, (report.differences[:5], report.projection_differences)
    assert report.events == fetch(database, "SELECT count(*) FROM ledger_events")[0][0]


def test_a_stream_caught_up_with_looks_its_visits_up_as_they_stood(database, monkeypatch):
    """Appended meanwhile to a stream walked already: a visit's reversal. Caught up with under the lock, the
    reversal looks its visit up through that stream's own last position compared, where the visit stood settled and
    not yet reversed (not through its own row, read by no comparison yet): it reverses it, and the ledger
    verifies."""
    nanjing = example_lines("nanjing")
    (reversal,) = [line for line in nanjing if '"event_type": "visit.reversed"' in line]
    ingest(database, nanjing[: nanjing.index(reversal)] + example_lines("weihai"))  # its year still open
    appended = _appending(database, monkeypatch, lambda row: row[6] == "371000", [reversal])  # in Weihai's stream
    report = asyncio.run(Replayer(database, batch_size=7).verify())
    assert appended and appended[0][0].appended == 1
    reversed_in_nanjing = "SELECT count(*) FROM ledger_settlements WHERE region = '320100' AND reverses IS NOT NULL"
    assert fetch(database, reversed_in_nanjing)[0][0] == 1
    assert report.ok, (report.differences[:5], report.projection_differences)


def test_a_region_whose_stream_comes_before_the_walk_s_appears_meanwhile(database, monkeypatch):
    """A stream's number is its region's code: Nanjing's, made while the walk is in Weihai's, lies behind it."""
    ingest(database, example_lines("weihai"))
    appended = _appending(database, monkeypatch, lambda row: row[6] == "371000", example_lines("nanjing"))
    report = asyncio.run(Replayer(database, batch_size=7).verify())
    assert appended and appended[0][0].appended > 0
    assert report.ok, (report.differences[:5], report.projection_differences)
    assert report.events == fetch(database, "SELECT count(*) FROM ledger_events")[0][0]


def test_a_stream_walked_already_adopts_a_parameter_set_meanwhile(database, monkeypatch):
    """Caught up with, the stream's events are held to the adoption it appended meanwhile."""
    nanjing = example_lines("nanjing")
    ingest(database, nanjing[:30] + example_lines("weihai"))
    appended = _appending(database, monkeypatch, lambda row: row[6] == "371000", nanjing[30:], IM_PARAMETERS)
    report = asyncio.run(Replayer(database, batch_size=7).verify())
    assert appended and appended[0][0].appended > 0
    adoptions = "SELECT count(*) FROM ledger_events WHERE event_type = 'ledger.parameters_adopted'"
    assert fetch(database, adoptions)[0][0] == 3  # the history's, Weihai's, and Nanjing's second
    assert report.ok, (report.differences[:5], report.projection_differences)
    assert report.events == fetch(database, "SELECT count(*) FROM ledger_events")[0][0]


def test_a_worker_of_some_regions_catches_their_streams_up(database, monkeypatch):
    """As a process of a verify split by region walks its regions' streams (`verify_in_parallel`)."""
    nanjing = example_lines("nanjing")
    ingest(database, nanjing[:40] + example_lines("weihai"))
    appended = _appending(database, monkeypatch, lambda row: row[6] == "371000", nanjing[40:])
    report = _verify_regions(database, 7, ["320100", "371000"], None, 1)
    assert appended and appended[0][0].appended > 0
    assert report.ok, (report.differences[:5], report.projection_differences)
    assert report.events == fetch(database, "SELECT count(*) FROM ledger_events WHERE region <> '*'")[0][0]


def test_after_catching_up_the_walk_s_own_stream_looks_its_visits_up_as_before(database, monkeypatch):
    """Appended meanwhile: events of a stream walked already, and a reversal in the stream the walk is in, both
    replayed in the last stretch: the reversal looks its visit up through its own stream's last position compared,
    where the visit stood settled, not through the other stream's."""
    nanjing, weihai = example_lines("nanjing"), example_lines("weihai")
    (reversal,) = [n for n, line in enumerate(weihai) if '"visit.reversed"' in line]
    ingest(database, nanjing[:40] + weihai[:reversal])
    ((last,),) = fetch(database, "SELECT max(seq) FROM ledger_events")
    more = nanjing[40:] + weihai[reversal : reversal + 1]
    appended = _appending(database, monkeypatch, lambda row: row[0] == last, more)
    report = asyncio.run(Replayer(database, batch_size=7).verify())
    assert appended
    reversed_in_weihai = "SELECT count(*) FROM ledger_settlements WHERE region = '371000' AND reverses IS NOT NULL"
    assert fetch(database, reversed_in_weihai)[0][0] == 1
    assert report.ok, (report.differences[:5], report.projection_differences)
    assert report.events == fetch(database, "SELECT count(*) FROM ledger_events")[0][0]
