"""Restarts and outages on the real broker and a real PostgreSQL: a consumer starting over the offsets it stored,
PostgreSQL stopped mid-stream and started again, `serve` killed and started again, and again."""

from __future__ import annotations

import asyncio
import logging

from ledger.service import LedgerService
from tests.kafka.streams import generated, publish, relayed_all, run, serving
from tests.kafka.test_failures import _async_until, _count
from tests.ledger.helpers import IM_PARAMETERS, fetch


def test_records_fetched_before_the_claims_seek_are_neither_settled_nor_taken_for_lost(
    settings, database, monkeypatch, caplog
):
    """A start over stored offsets: the partitions are assigned, then claimed in PostgreSQL (slowly here), then
    the consumer seeks to the stored offsets. Nothing is fetched from the log's start meanwhile, so no batch from
    offset 0 is settled against the stored offsets, and no offsets are reported gone from the topic."""
    caplog.set_level(logging.INFO)
    lines = generated(1_200, 100)
    first = lines[:800]

    async def scenario():
        await publish(settings, first)
        async with serving(settings, database, IM_PARAMETERS, batch_size=40):
            await _async_until(lambda: _count(database) == len(first))
        real_claim = LedgerService.claim

        async def slow_claim(self, *args, **kwargs):
            await asyncio.sleep(2)  # time for the consumer to fetch, were it fetching
            return await real_claim(self, *args, **kwargs)

        monkeypatch.setattr(LedgerService, "claim", slow_claim)
        await publish(settings, lines[len(first) :])
        async with serving(settings, database, IM_PARAMETERS, batch_size=40) as service:
            await _async_until(lambda: _count(database) == len(lines) and relayed_all(database))
            return service.metrics.gaps._value.get(), service.metrics.duplicates._value.get()

    gaps, repeats = run(scenario())
    said = caplog.text
    assert "were never consumed" not in said
    assert "batch does not continue the stored offsets" not in said
    assert gaps == 0 and repeats == 0
    assert _count(database) == len(lines)
    stored = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", settings.group_id)
    assert stored[0][0] == len(lines)
