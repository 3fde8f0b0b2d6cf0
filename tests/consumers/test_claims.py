"""Partition claims against the ledger database, with a stand-in for the Kafka consumer's positions."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from consumers.claims import Claims
from ledger.service import LedgerService

TP = TopicPartition("events", 0)


class Positions:
    """What Claims asks of the consumer: its assignment, seeks, pauses and the log's ends."""

    def __init__(self, assigned, end: int = 100):
        self.assigned, self.end = set(assigned), end
        self.seeks: dict = {}
        self.paused: set = set()

    def assignment(self):
        return set(self.assigned)

    def seek(self, tp, offset):
        self.seeks[tp] = offset

    def resume(self, *tps):
        self.paused -= set(tps)

    def pause(self, *tps):
        self.paused |= set(tps)

    async def end_offsets(self, tps):
        return dict.fromkeys(tps, self.end)

    async def beginning_offsets(self, tps):
        return dict.fromkeys(tps, 0)


def test_a_rewind_between_revocation_and_assignment_claims_nothing(database):
    """aiokafka still reports the old assignment between the two callbacks, and the partition may be another
    instance's by then: a rewind in that window (after a failed commit) must not claim it back and fence that
    instance out of it."""

    async def scenario():
        async with LedgerService(database) as service:
            mine, theirs = Positions([TP]), Positions([TP])
            here = Claims(service, "group", lambda: mine)
            there = Claims(service, "group", lambda: theirs)
            await here.on_partitions_assigned([TP])
            await here.on_partitions_revoked([TP])  # mine.assignment() still says TP, as aiokafka's does
            await there.on_partitions_assigned([TP])
            claimed = await service.stored_offsets("group", [("events", 0)])
            await here.rewind()
            after = await service.stored_offsets("group", [("events", 0)])
            await here.on_partitions_assigned([])  # this instance was given nothing
            return claimed, after, here.reassigning, there.held

    claimed, after, reassigning, held = asyncio.run(scenario())
    assert after == claimed  # not claimed again: the other instance's epoch stands
    assert held[("events", 0)].epoch == after[("events", 0)].epoch
    assert not reassigning


def test_a_rewind_outside_a_rebalance_claims_what_the_assignment_failed_to(database):
    async def scenario():
        async with LedgerService(database) as service:
            mine = Positions([TP])
            here = Claims(service, "group", lambda: mine)
            await here.on_partitions_assigned([])  # as if the claim at assignment had failed
            await here.rewind()
            return here.held, mine.seeks

    held, seeks = asyncio.run(scenario())
    assert ("events", 0) in held and seeks == {TP: 0}
