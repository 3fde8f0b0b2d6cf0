"""`medledger serve`: the FastStream application that settles the event topic into the ledger.

One input topic carries every contract event, keyed by its region code, so that a producer's own partitioner puts
a region's events in one partition, applied in the order they were produced; an event found on another partition
is refused (`routing`). Batches are settled as
one transaction each, with the consumed offsets (see `ledger.db.tracking`); the outbox relay then publishes the
settlement and rejection streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from datetime import timedelta
from itertools import chain
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI

from consumers.broker import make_broker
from consumers.settings import Settings
from consumers.topics import coordinator_ready, ensure_topics
from ledger.authority import Authority, LedgerSigner, load_private
from ledger.contract.event import Event
from ledger.db import instances
from ledger.service import IngestStats, LedgerService
from ledger.wire_schema import IncentiveMessage, MovementMessage, RejectionMessage, SettlementMessage

from . import routing
from .claims import Claims
from .lag import Lag
from .metrics import Metrics
from .producer import BatchProducer
from .relay import Relay
from .settle import Settler

log = logging.getLogger("medledger.service")
SWEEP_EVERY = timedelta(minutes=1)
LAG_EVERY = 5.0  # seconds


# How long a poll waits for records when none have been fetched. A poll returns as soon as any have been, so this
# sets only how often an idle consumer looks again, never the size of a batch.
POLL_TIMEOUT_MS = 100


class PromptBatchSubscriber(BatchSubscriber):
    """FastStream's batch subscriber, except after a poll that waited its whole timeout and found nothing: FastStream
    sleeps as long again before the next poll, so a record arriving meanwhile waited up to that long for nothing
    (100 ms, at every pause in the traffic). Here the next poll starts at once and returns with the record as soon
    as it is fetched. Only a poll that came back empty early (a rebalance) is followed by a pause, so that an empty
    loop never spins."""

    __slots__ = ()

    async def get_msg(self, consumer: Any) -> tuple[Any, ...]:
        began = time.monotonic()
        fetched = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
        if not fetched:
            await asyncio.sleep(max(self.batch_timeout_ms / 1000 - (time.monotonic() - began), 0.0))
        return tuple(chain(*fetched.values()))


async def raw_records(message: Any) -> list[Any]:
    """The handler receives the Kafka records themselves: decoding is the ledger's, exactly as for a file."""
    return list(message.raw_message)


def declare(
    broker: KafkaBroker, settings: Settings, settler: Settler | None = None, claims: Claims | None = None
) -> Any:
    """The subscriber and the two output topics, as the running service and its AsyncAPI document see them."""
    subscriber = broker.subscriber(
        settings.events_topic,
        group_id=settings.group_id,
        group_instance_id=settings.group_instance_id,
        batch=True,
        max_records=settings.batch_size,
        batch_timeout_ms=POLL_TIMEOUT_MS,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        listener=claims,
        decoder=raw_records,
        title="settle",
        description="Contract events (member.*, account.*, visit.*, period.year_closed). The record key is the "
        "event's region code, and the partition the one Kafka's default partitioner gives that key: "
        "(murmur2(key) & 0x7fffffff) % partitions, as the Java client and librdkafka's murmur2_random compute it "
        "(librdkafka's own default, consistent_random, is crc32(key) % partitions: set partitioner=murmur2_random, "
        "or run medledger with MEDLEDGER_PARTITIONER=crc32). An event found on a partition other than its "
        "region's is refused with the reason misrouted, kept, and never applied. Each batch commits with its "
        "offsets in PostgreSQL.",
    )

    # Annotated with what one Kafka record carries, for the AsyncAPI document: one contract event as a JSON
    # object. The handler itself gets the records of a batch as they are (`raw_records`, no `apply_types`).
    async def settle(records: Event) -> None:
        if settler is not None:
            await settler(records)

    subscriber(settle)
    subscriber.__class__ = PromptBatchSubscriber  # the same subscriber, without the pause after an empty poll
    settlement_stream = broker.publisher(
        settings.settlements_topic,
        title=settings.settlements_topic,
        description="Settlements, reversals, account movements and incentive evaluations, in commit order, keyed "
        "by member_id. Delivered at least once: deduplicate by settlement_id / movement_id.",
        schema=SettlementMessage | MovementMessage | IncentiveMessage,
    )
    rejection_stream = broker.publisher(
        settings.rejections_topic,
        title=settings.rejections_topic,
        description="Refused events: the event id (or the topic/partition/offset of unreadable input), a stable "
        "reason code, a sentence naming the field or rule, and the original payload. Kept in ledger_rejections too.",
        schema=RejectionMessage,
    )
    del settlement_stream, rejection_stream  # documented here; the outbox relay publishes
    return subscriber


def asyncapi_app() -> FastStream:
    """The application as documented (`faststream docs gen consumers.app:asyncapi_app --factory`)."""
    settings = Settings.from_env()
    broker = make_broker(settings)
    declare(broker, settings)
    return FastStream(broker, specification=_specification(settings))


def _specification(settings: Settings) -> AsyncAPI:
    return AsyncAPI(
        title="medledger",
        version="1",
        description="Settlement ledger for outpatient mutual-aid schemes: contract events in, settlements out. "
        "A settlement carries each field under its own name and again under its national 2207 name.",
    )


class Service:
    """Everything `serve` runs: the consumer, the relay, the parking sweep and the metrics endpoint."""

    def __init__(self, settings: Settings, service: LedgerService, partitions: int = 4):
        self.settings, self.service, self.partitions = settings, service, partitions
        if service.authority is None:
            # Anyone who can write to the event topic could otherwise write the figures in.
            if settings.producers is None:
                raise ValueError("serve needs MEDLEDGER_PRODUCERS: the producers' public keys and permissions")
            service.authority = Authority.load(settings.producers)
        if settings.ledger_key is None:
            raise ValueError("serve needs MEDLEDGER_LEDGER_KEY: the key the relay signs what it publishes with")
        self.metrics = Metrics()
        self.broker = make_broker(settings, consumer_only=True)
        self.producer = BatchProducer(settings, signer=LedgerSigner(load_private(settings.ledger_key)))
        self.relay = Relay(
            service,
            self.producer,
            {"settlements": settings.settlements_topic, "rejections": settings.rejections_topic},
            self.metrics,
        )
        self.claims = Claims(service, settings.group_id, lambda: self.subscriber.consumer)
        self.claims.on_rebase = self._rebased
        self.settler = Settler(
            service,
            self.claims,
            self.metrics,
            self.relay,
            max_records=settings.batch_size,
            running=lambda: self.subscriber.running,
        )
        self.subscriber = declare(self.broker, settings, self.settler, self.claims)
        self.app = FastStream(self.broker, specification=_specification(settings), logger=log)
        self.app.on_startup(self._open)
        self.app.after_startup(self._started)
        self.app.after_shutdown(self._closed)
        self._tasks: list[asyncio.Task] = []
        self._http: tuple[Any, Any] | None = None  # the metrics server and its thread
        self._routes: routing.Expected | None = None
        self._instance: instances.Held | None = None  # this group instance's lock (`ledger.db.instances`)
        self.lost: instances.InstanceInUse | None = None  # the lock, taken by another process while this one ran
        self._collection_began = 0.0
        self._collections: list[float] = []  # pauses of the garbage collector not yet counted

    def _rebased(self, partition: tuple[str, int]) -> None:
        self.metrics.rebased.inc()
        self.settler.forget(partition)

    async def _open(self) -> None:
        log.info(
            "medledger starting",
            extra={"group": self.settings.group_id, "instance": self.settings.group_instance_id},
        )
        await self.service.__aenter__()
        if self.settings.group_instance_id and self.service.db is not None:
            self._instance = await instances.Held.take(
                self.service.db.app_url, self.settings.group_id, self.settings.group_instance_id
            )
        await ensure_topics(self.settings, self.partitions)
        await coordinator_ready(self.settings, self.settings.group_id)
        self._routes = await routing.expect(self.settings, self.partitions, self.metrics)
        await self.producer.start()

    def _collecting(self, phase: str, _info: dict[str, int]) -> None:
        """A pause of the cyclic garbage collector, kept until `_count_collections`. Nothing here takes a lock: a
        collection can start while this thread holds any of them (a metric's, say), and would wait for itself."""
        if phase == "start":
            self._collection_began = time.perf_counter()
        else:
            self._collections.append(time.perf_counter() - self._collection_began)

    def _count_collections(self) -> None:
        """The collector's pauses since the last call, as `medledger_stage_seconds{stage="collected"}`."""
        paused, self._collections = self._collections, []
        for seconds in paused:
            self.metrics.stages.labels("collected").observe(seconds)

    async def _started(self) -> None:
        gc.callbacks.append(self._collecting)
        self._tasks = [asyncio.create_task(self.relay.run()), asyncio.create_task(self._sweep())]
        self._tasks.append(asyncio.create_task(self._watch_lag()))
        self._tasks.append(asyncio.create_task(routing.watch(self.settings, self.partitions, self.metrics)))
        if self._instance is not None:
            self._tasks.append(asyncio.create_task(self._keep_instance(self._instance)))
        if self.settings.metrics_port is not None:
            self._http = self.metrics.serve(self.settings.metrics_port, self.settings.metrics_host)
        log.info(
            "medledger serving",
            extra={"topic": self.settings.events_topic, "group": self.settings.group_id},
        )

    async def _closed(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._collecting)
        # The consumer has stopped; its last batch commits, then what is left is published and the relay stops.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.settler.drain(), 60)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay.flush(chunks=50), 30)
        self.relay.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(self._tasks[0], return_exceptions=True), 10)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            thread.join(5)
        await self.producer.stop()
        routing.forget(self.settings, self._routes)
        if self._instance is not None:
            await self._instance.release()
        await self.service.__aexit__(None, None, None)
        log.info("medledger stopped")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY.total_seconds())
            # Each batch of the sweep wakes the relay as it commits, and counts in `stats`, even if a later one fails.
            stats = IngestStats()
            try:
                await self.service.sweep(stats=stats, on_published=lambda _published: self.relay.wake())
                if stats.expired:
                    log.info("parked events expired", extra={"expired": stats.expired})
            except Exception:
                log.exception("parking sweep failed; trying again later")
            finally:
                self.metrics.rejections.inc(stats.rejected)  # consumed when they were parked: counted then

    async def _keep_instance(self, held: instances.Held) -> None:
        """The instance's lock, taken again when its connection was lost; when another process has taken it,
        this one stops (the CLI exits with the reason), as that process's start would otherwise have been refused."""
        try:
            await held.keep()
        except instances.InstanceInUse as error:
            log.error("stopping: %s", error)
            self.lost = error
            self.app.exit()

    async def _watch_lag(self) -> None:
        lag = Lag(self.metrics.lag)
        while True:
            await asyncio.sleep(LAG_EVERY)
            self._count_collections()
            consumer = self.subscriber.consumer
            if consumer is None:
                continue
            try:
                claims = self.claims
                await lag.update(consumer, set(claims.held), set(claims.fenced), dict(claims.committed))
            except Exception:
                log.warning("consumer lag not updated", exc_info=True)
