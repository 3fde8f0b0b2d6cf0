"""Consumed offsets stored with the ledger rows, and the claims that fence a consumer which lost its partitions."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ledger.db.tracking import OutOfSequence, StaleClaim
from ledger.intake import from_lines
from ledger.service import LedgerService, Tracking
from tests import builders as b
from tests.ledger.helpers import PRODUCED, fetch, refusing_outbox

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
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 3


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
    rows = fetch(database, f"SELECT member_id FROM {PRODUCED} ORDER BY seq")
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
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 2
    offsets = fetch(database, "SELECT partition, next_offset FROM consumer_offsets ORDER BY partition")
    assert [tuple(r) for r in offsets] == [(0, 2), (1, None)]


def test_offsets_roll_back_with_a_failed_batch(database, monkeypatch):
    b.fresh()
    import ledger.db.recorder as recorder_module

    async def scenario():
        async with LedgerService(database) as service:
            claims = await service.claim("group", [TP])
            monkeypatch.setattr(recorder_module, "add_outbox", refusing_outbox(recorder_module.add_outbox))
            with pytest.raises(asyncpg.NotNullViolationError):
                await _batch(service, _lines("M1"), claims, {TP: (0, 1)})

    asyncio.run(scenario())
    assert fetch(database, "SELECT next_offset FROM consumer_offsets")[0][0] is None
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 0


def test_the_service_role_may_move_offsets_but_not_rewrite_the_outbox(database):
    from tests.ledger.helpers import execute

    execute(database, "INSERT INTO outbox (stream, key, value) VALUES ('settlements', 'M1', '{}')")
    for statement in ("UPDATE outbox SET value = '[]'", "DELETE FROM outbox"):
        with pytest.raises(Exception, match="permission denied"):
            execute(database, statement)


# A batch settled while the one before it commits (`prepare`, then `commit`) has its claims, and where the ledger
# stands, read by its own write statement: what that finds decides whether its transaction commits.


async def _prepared(service: LedgerService, lines, claims, spans, consumer: str = "group"):
    return await service.prepare(list(from_lines(lines, "kafka")), None, Tracking(consumer, claims, spans))


def test_a_prepared_batch_whose_partition_was_claimed_since_writes_nothing(database):
    b.fresh()

    async def scenario():
        async with LedgerService(database) as service:
            old = await service.claim("group", [TP])
            prepared = await _prepared(service, _lines("M1"), old, {TP: (0, 1)})
            await service.claim("group", [TP])  # the partition is reassigned meanwhile
            with pytest.raises(StaleClaim) as fenced:
                await service.commit(prepared)
            assert fenced.value.lost == [TP]

    asyncio.run(scenario())
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 0
    assert fetch(database, "SELECT next_offset, epoch FROM consumer_offsets")[0][:] == (None, 2)


def test_a_prepared_batch_read_from_before_the_stored_offset_writes_nothing(database):
    b.fresh()

    async def scenario():
        async with LedgerService(database) as service:
            claims = await service.claim("group", [TP])
            await _batch(service, _lines("M1", "M2"), claims, {TP: (0, 2)})
            prepared = await _prepared(service, _lines("M2", "M3"), claims, {TP: (1, 3)})
            with pytest.raises(OutOfSequence):
                await service.commit(prepared)

    asyncio.run(scenario())
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 2
    assert fetch(database, "SELECT next_offset FROM consumer_offsets")[0][0] == 2


def test_a_claim_raised_while_a_batch_commits_fences_it(database):
    """The claims are read as the write statement starts; a claim raised by a rebalance that has not committed by
    then holds the partition's row, and the statement's update of the offsets waits for it. Once the claim
    commits, the update finds the new epoch: the batch must not commit, though what it read said it could."""
    from tests.ledger.helpers import plain, until_waiting

    b.fresh()

    async def scenario():
        rebalance = await asyncpg.connect(plain(database.owner_url))
        try:
            async with LedgerService(database) as service:
                claims = await service.claim("group", [TP])
                prepared = await _prepared(service, _lines("M1"), claims, {TP: (0, 1)})
                await rebalance.execute(
                    "BEGIN; UPDATE consumer_offsets SET epoch = epoch + 1 WHERE consumer = 'group'"
                )  # as `claim` does, not yet committed
                committing = asyncio.create_task(service.commit(prepared))
                await until_waiting(rebalance, "the batch's update of the claimed offsets")
                assert not committing.done()
                await rebalance.execute("COMMIT")
                with pytest.raises(StaleClaim) as fenced:
                    await committing
                assert fenced.value.lost == [TP]
        finally:
            await rebalance.close()

    asyncio.run(scenario())
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 0
    assert fetch(database, "SELECT next_offset, epoch FROM consumer_offsets")[0][:] == (None, 2)


def test_a_batch_and_a_claim_of_its_partitions_lock_them_in_the_same_order(database):
    """A rebalance claims partitions one row at a time in key order; a batch's commit must lock the same rows in
    the same order, whatever order the table holds them in, or each could hold a row the other waits for."""
    from tests.ledger.helpers import plain, until_waiting

    b.fresh()
    first, second = ("events", 0), ("events", 1)

    async def scenario():
        rebalance = await asyncpg.connect(plain(database.owner_url))
        try:
            async with LedgerService(database) as service:
                claims = await service.claim("group", [("events", n) for n in range(50)])
                await _batch(service, _lines("M0"), claims, {first: (0, 1)})  # its row now lies after the others
                await rebalance.execute("ANALYZE consumer_offsets")
                prepared = await _prepared(service, _lines("M1", "M2"), claims, {first: (1, 2), second: (0, 1)})
                bump = "UPDATE consumer_offsets SET epoch = epoch + 1 WHERE consumer = 'group' AND partition = $1"
                await rebalance.execute("BEGIN")
                await rebalance.execute(bump, 0)  # as `claim` does, partition after partition
                committing = asyncio.create_task(service.commit(prepared))
                await until_waiting(rebalance, "the batch's lock of the first partition")
                await rebalance.execute(bump, 1)
                await rebalance.execute("COMMIT")
                with pytest.raises(StaleClaim) as fenced:
                    await committing
                assert fenced.value.lost == [first, second]
        finally:
            await rebalance.close()

    asyncio.run(scenario())
    assert [r[0] for r in fetch(database, f"SELECT member_id FROM {PRODUCED}")] == ["M0"]


def test_a_batch_another_consumer_committed_first_is_refused_for_its_stale_claim(database):
    """Both consumers read the same record across a rebalance and the new owner commits it first: the old one's
    statement meets the event's id already in the ledger, and what it is told is that it lost the partition."""
    b.fresh()

    async def scenario():
        async with LedgerService(database) as service:
            old = await service.claim("group", [TP])
            prepared = await _prepared(service, _lines("M1"), old, {TP: (0, 1)})
            new = await service.claim("group", [TP])
            await _batch(service, _lines("M1"), new, {TP: (0, 1)})
            with pytest.raises(StaleClaim) as fenced:
                await service.commit(prepared)
            assert fenced.value.lost == [TP]

    asyncio.run(scenario())
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 1
    assert fetch(database, "SELECT next_offset FROM consumer_offsets")[0][0] == 1
