"""Partition ownership as the ledger sees it: claimed in PostgreSQL on assignment, then consumed from the offset
stored there (never from Kafka's committed offsets, which medledger does not use)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from ledger.db.tracking import Claim
from ledger.service import LedgerService

log = logging.getLogger("medledger.consumer")


class Claims(ConsumerRebalanceListener):
    """What this consumer holds. `consumer_of` returns the Kafka consumer once the subscriber has started."""

    def __init__(self, service: LedgerService, name: str, consumer_of: Callable[[], AIOKafkaConsumer | None]):
        self.service, self.name, self.consumer_of = service, name, consumer_of
        self.held: dict[tuple[str, int], Claim] = {}
        self.committed: dict[tuple[str, int], int] = {}  # next offset after the last batch this consumer committed
        self.fenced: set[tuple[str, int]] = set()  # claimed by another consumer since: paused until reassigned
        # Held by a batch while it settles and by a rebalance while it claims: a batch sees whole claims, and a
        # partition is given up only after the batch that read it has committed or rolled back.
        self.lock = asyncio.Lock()
        # awaited under the lock before partitions change hands
        self.before_change: Callable[[], Awaitable[object]] = _nothing
        # Raised whenever the consumer's positions are moved (a seek, partitions taken or given up): records fetched
        # before that are not to be settled.
        self.moves = 0
        # told of each partition whose stored offset was past the end of its log
        self.on_rebase: Callable[[tuple[str, int]], None] = _ignore
        self.on_unclaimed = _none  # told when partitions were assigned and could not be claimed
        # From partitions revoked to partitions assigned: the consumer still reports its old assignment, which may
        # be another instance's by now. A rewind meanwhile claims nothing, or it would fence that instance out.
        self.reassigning = False

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.lock:
            await self.before_change()
            self.reassigning = True
            self._forget(revoked)

    def _forget(self, revoked: list[TopicPartition]) -> None:
        self.moves += 1
        for tp in revoked:
            self.fenced.discard((tp.topic, tp.partition))
            self.held.pop((tp.topic, tp.partition), None)
            self.committed.pop((tp.topic, tp.partition), None)
        if revoked:
            log.info("partitions revoked", extra={"partitions": [f"{tp.topic}/{tp.partition}" for tp in revoked]})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Paused before anything is awaited, and resumed by the claim's seek: until then the consumer fetches
        # nothing of them. It would fetch from the log's start (medledger commits no offsets to Kafka), and that
        # batch, settled once the claim is made, would neither continue the stored offsets nor be the last read.
        consumer = self.consumer_of()
        if assigned and consumer is not None:
            consumer.pause(*assigned)
        async with self.lock:
            try:
                if assigned:
                    await self.before_change()
                    await self.take(assigned)
            except Exception as error:
                # The database is away, say: the partitions stay paused until a rewind claims them.
                log.warning("partitions assigned but not claimed yet: %s", error)
                self.on_unclaimed()
            finally:
                self.reassigning = False  # a claim that failed here is made by the next rewind

    async def take(self, partitions: list[TopicPartition]) -> None:
        """Claim and seek: consumption resumes right after the last batch committed, by anyone."""
        claims = await self.service.claim(self.name, [(tp.topic, tp.partition) for tp in partitions])
        consumer: AIOKafkaConsumer = self.consumer_of()
        await self._behind_the_log(consumer, claims)
        self.moves += 1
        # Seek first, then hold: a batch fetched before the seek must not commit under the new claim.
        for tp in partitions:
            claimed = claims[(tp.topic, tp.partition)]
            consumer.seek(tp, _start(claimed))
        consumer.resume(*partitions)
        for (topic, partition), claimed in claims.items():
            self.fenced.discard((topic, partition))
            self.held[(topic, partition)] = claimed
            if claimed.next_offset is not None:
                self.committed[(topic, partition)] = claimed.next_offset
        log.info(
            "partitions claimed",
            extra={
                "partitions": {
                    f"{tp.topic}/{tp.partition}": claims[(tp.topic, tp.partition)].next_offset for tp in partitions
                }
            },
        )

    async def rewind(self) -> None:
        """After a batch did not commit: go back to the stored offsets of everything still assigned, so the
        batch is read again rather than skipped. A partition another consumer has claimed since is paused, not
        claimed back: Kafka's rebalance is about to take it from this one."""
        consumer: AIOKafkaConsumer = self.consumer_of()
        self.moves += 1
        assigned = list(consumer.assignment())
        if not assigned or self.reassigning:
            return  # the assignment to come claims and seeks
        current = await self.service.stored_offsets(self.name, [(tp.topic, tp.partition) for tp in assigned])
        still = {
            key: claim for key, claim in current.items() if (held := self.held.get(key)) and held.epoch == claim.epoch
        }
        await self._behind_the_log(consumer, still)
        current.update(still)
        lost = []
        for tp in assigned:
            key = (tp.topic, tp.partition)
            if key in self.fenced:
                continue
            mine = self.held.get(key)
            now = current.get(key)
            if mine is None or now is None:
                lost.append(tp)  # the claim at assignment did not happen: make it now
            elif now.epoch != mine.epoch:
                consumer.pause(tp)
                self.fenced.add(key)
                self.held.pop(key, None)
                log.warning("partition %s/%d claimed by another consumer; paused until the rebalance", *key)
            else:
                consumer.seek(tp, _start(now))
        if lost:
            await self.take(lost)

    async def _behind_the_log(self, consumer: AIOKafkaConsumer, claims: dict) -> None:
        """A stored offset past the end of its partition's log: the topic was deleted and made again, or the
        broker lost records it had acknowledged. Records produced from now on take offsets the ledger counts as
        consumed, and would be skipped; so consumption starts again from the log's beginning, and what is read
        again is acknowledged as repeats (by event id). Said loudly: it needs an operator's look."""
        stored = {TopicPartition(t, p): c for (t, p), c in claims.items() if c.next_offset is not None}
        if not stored:
            return
        ends = await consumer.end_offsets(list(stored))
        ahead = [tp for tp, claim in stored.items() if claim.next_offset > ends[tp]]
        if not ahead:
            return
        starts = await consumer.beginning_offsets(ahead)
        for tp in ahead:
            key, held = (tp.topic, tp.partition), stored[tp]
            moved = await self.service.rebase(self.name, key, held, starts[tp])
            if moved is None:
                continue  # claimed or consumed elsewhere meanwhile: that claim's holder decides
            claims[key] = moved
            if key in self.committed and moved.next_offset is not None:
                self.committed[key] = moved.next_offset
            elif key in self.committed:  # nothing consumed at its new start: nothing committed since either
                del self.committed[key]
            self.on_rebase(key)
            log.error(
                "stored offset %d of %s/%d is past the end of its log (%d): the topic was made again or the broker "
                "lost records; reading it again from offset %d, repeats acknowledged by event id",
                held.next_offset,
                tp.topic,
                tp.partition,
                ends[tp],
                starts[tp],
                extra={"topic": tp.topic, "partition": tp.partition, "stored": held.next_offset, "end": ends[tp]},
            )


async def _nothing() -> None:
    return None


def _ignore(_partition: tuple[str, int]) -> None:
    return None


def _none() -> None:
    return None


def _start(claim: Claim) -> int:
    """Where to read from. Nothing committed yet: offset 0, which the consumer's `auto_offset_reset=earliest` moves
    to the log start when retention has deleted it (a seek that needs no round trip to the broker)."""
    return 0 if claim.next_offset is None else claim.next_offset
