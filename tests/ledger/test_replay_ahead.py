"""Replay reads the next batch of events on a connection of its own while the batch before settles
(`Replayer._walk`): the batches are still replayed in order, each once, and a batch that fails stops the replay
with its error, the read under way abandoned, nothing left running."""

from __future__ import annotations

import asyncio

import pytest

from ledger.replay import Replayer
from tests.ledger.helpers import example_lines, execute, fetch, ingest


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
