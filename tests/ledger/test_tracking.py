"""Consumed offsets stored with the ledger rows, and the claims that fence a consumer which lost its partitions."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ledger.db.tracking import OutOfSequence, StaleClaim
from ledger.intake import from_lines
from ledger.service import LedgerService, Tracking
from tests import builders as b
from tests.ledger.helpers import fetch, refusing_outbox

TP = ("events", 0)


def _lines(*members: str) -> list[str]:
    return [b.as_line(b.enrolled(member, b.NANJING)) for member in members]


async def _batch(service: LedgerService, lines, claims, spans, consumer: str = "group"):
    return await service.ingest_batch(list(from_lines(lines, "kafka")), Tracking(consumer, claims, spans))


def test_a_batch_commits_its_offsets_with_its_ledger_rows(database):
    b.fresh()

    async def scenario():
        async with LedgerService(database) as service:
            claims = await service.claim("group", [TP])
            assert claims[TP].next_offset is None
            await _batch(service, _lines("M1", "M2"), claims, {TP: (0, 2)})
            await _batch(service, _lines("M3"), claims, {TP: (2, 3)})
            return await service.claim("group", [TP])

    again = asyncio.run(scenario())
    assert again[TP].next_offset == 3
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == 3


def test_a_consumer_that_lost_its_partition_cannot_commit_what_it_read_before(database):
    b.fresh()

    async def scenario():
        async with LedgerService(database) as service:
            old = await service.claim("group", [TP])
            await _batch(service, _lines("M1"), old, {TP: (0, 1)})
            new = await service.claim("group", [TP])  # the partition is reassigned to another consumer
            assert new[TP].epoch == old[TP].epoch + 1 and new[TP].next_offset == 1
            with pytest.raises(StaleClaim) as fenced:
                await _batch(service, _lines("M2"), old, {TP: (1, 2)})
            assert fenced.value.lost == [TP]
            await _batch(service, _lines("M2"), new, {TP: (1, 2)})

    asyncio.run(scenario())
    rows = fetch(database, "SELECT member_id FROM ledger_events ORDER BY seq")
    assert [r[0] for r in rows] == ["M1", "M2"]
    assert fetch(database, "SELECT next_offset FROM consumer_offsets")[0][0] == 2


def test_a_batch_read_from_before_the_stored_offset_is_refused_whole(database):
    b.fresh()

    async def scenario():
        async with LedgerService(database) as service:
            claims = await service.claim("group", [TP, ("events", 1)])
            await _batch(service, _lines("M1", "M2"), claims, {TP: (0, 2)})
            with pytest.raises(OutOfSequence) as stale:
                await _batch(service, _lines("M2", "M3", "M4"), claims, {TP: (1, 3), ("events", 1): (0, 1)})
            return stale.value

    stale = asyncio.run(scenario())
    assert "events/0 stored 2, batch starts at 1" in str(stale)
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == 2
    offsets = fetch(database, "SELECT partition, next_offset FROM consumer_offsets ORDER BY partition")
    assert [tuple(r) for r in offsets] == [(0, 2), (1, None)]


def test_offsets_roll_back_with_a_failed_batch(database, monkeypatch):
    b.fresh()
    import ledger.service as service_module

    async def scenario():
        async with LedgerService(database) as service:
            claims = await service.claim("group", [TP])
            monkeypatch.setattr(service_module, "add_outbox", refusing_outbox(service_module.add_outbox))
            with pytest.raises(asyncpg.NotNullViolationError):
                await _batch(service, _lines("M1"), claims, {TP: (0, 1)})

    asyncio.run(scenario())
    assert fetch(database, "SELECT next_offset FROM consumer_offsets")[0][0] is None
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == 0


def test_the_service_role_may_move_offsets_but_not_rewrite_the_outbox(database):
    from tests.ledger.helpers import execute

    execute(database, "INSERT INTO outbox (stream, key, value) VALUES ('settlements', 'M1', '{}')")
    for statement in ("UPDATE outbox SET value = '[]'", "DELETE FROM outbox"):
        with pytest.raises(Exception, match="permission denied"):
            execute(database, statement)
