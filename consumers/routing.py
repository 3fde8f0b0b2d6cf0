"""An event found on a partition other than its region's: refused, kept, never applied.

A region's events are ordered against each other only within one partition (`partitioning`). An event of region R
read from another partition may have been produced before or after any of R's events, a year close among them; the
ledger cannot tell, so it does not apply it. The record is refused with the reason `misrouted` (kept in
`ledger_rejections` with its payload and published on the rejection topic), counted
(`medledger_misrouted_total`) and logged with its region and partition. Refused so, as input that never became an
event, it holds nothing against its event id: the same event sent again on its region's partition is settled.

The region's partition is computed from the partition count `serve` is configured for (`--partitions`,
MEDLEDGER_PARTITIONS) and the partitioner the producers use (MEDLEDGER_PARTITIONER). `serve` does not start when the
event topic has another number of partitions, and while it runs it checks the topic every `WATCH_EVERY` seconds: a
partition added meanwhile moves regions to other partitions (see docs/kafka.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord

from consumers.partitioning import partition_for
from consumers.settings import Settings
from consumers.topics import partition_count
from ledger.contract import InvalidEvent
from ledger.intake import Incoming

from .metrics import Metrics

log = logging.getLogger("medledger.consumer")

WATCH_EVERY = 30.0  # seconds between two looks at the event topic's partition count


class Misrouted(InvalidEvent):
    reason = "misrouted"


class PartitionCountChanged(RuntimeError):
    """The event topic has a number of partitions `serve` was not configured for."""


@dataclass
class Expected:
    partitions: int
    partitioner: str
    metrics: Metrics | None
    counted: dict[int, int] = field(default_factory=dict)  # partition -> offset after the last misrouted counted


class Routes:
    """The routing each event topic is read with, in this process (`expect`, from `serve`'s start, until
    `forget`; the latest of services reading one topic in one process). A topic no one expects anything of is not
    checked."""

    def __init__(self) -> None:
        self._topics: dict[str, list[Expected]] = {}

    def expect(self, topic: str, partitions: int, partitioner: str, metrics: Metrics | None = None) -> Expected:
        partition_for("", 1, partitioner)  # an unknown partitioner fails here, at start
        expected = Expected(partitions, partitioner, metrics)
        self._topics.setdefault(topic, []).append(expected)
        return expected

    def forget(self, topic: str, expected: Expected) -> None:
        held = self._topics.get(topic, [])
        self._topics[topic] = [e for e in held if e is not expected]
        if not self._topics[topic]:
            del self._topics[topic]

    def check(self, item: Incoming, record: ConsumerRecord) -> Incoming:
        """`item`, decoded from `record`, refused as `Misrouted` when its region's partition is another one."""
        held = self._topics.get(record.topic)
        if not held or item.event is None:
            return item
        expected = held[-1]
        event = item.event
        home = partition_for(event.region, expected.partitions, expected.partitioner)
        if home == record.partition:
            return item
        detail = (
            f"region {event.region}'s events are on partition {home} of {record.topic} ({expected.partitions} "
            f"partitions, record key the region code, partitioner {expected.partitioner}); this one was found on "
            f"partition {record.partition} and cannot be ordered against its region's events. Not applied; kept "
            "here with its payload: send it again keyed by its region code"
        )
        item.error, item.event = Misrouted(detail, item.raw, event.event_id), None
        if record.offset >= expected.counted.get(record.partition, 0):  # once, however often it is read again
            expected.counted[record.partition] = record.offset + 1
            if expected.metrics is not None:
                expected.metrics.misrouted.inc()
            log.warning(
                "event %s of region %s found on partition %d of %s, its region's is %d: misrouted, not applied",
                event.event_id,
                event.region,
                record.partition,
                record.topic,
                home,
                extra={
                    "event_id": event.event_id,
                    "region": event.region,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "expected_partition": home,
                },
            )
        return item


ROUTES = Routes()


def routed(item: Incoming, record: ConsumerRecord) -> Incoming:
    return ROUTES.check(item, record)


def mismatch(topic: str, found: int, configured: int) -> str:
    return (
        f"the event topic {topic} has {found} partitions; serve is configured for {configured} (--partitions, "
        "MEDLEDGER_PARTITIONS), and a region's partition depends on the count. Before changing either, see "
        "docs/kafka.md (adding partitions)"
    )


async def expect(settings: Settings, partitions: int, metrics: Metrics) -> Expected:
    """At start: the event topic has the partitions `serve` is configured for (`PartitionCountChanged` if not),
    and its records are checked against them from now on, until `forget`."""
    found = await described(settings)
    metrics.partitions.set(found)
    metrics.partitions_configured.set(partitions)
    if found != partitions:
        raise PartitionCountChanged(mismatch(settings.events_topic, found, partitions))
    return ROUTES.expect(settings.events_topic, partitions, settings.partitioner, metrics)


async def described(settings: Settings, within: float = 30.0) -> int:
    """The event topic's partition count. A topic made a moment ago (by `ensure_topics`, say) may not be described
    with its partitions yet: asked again for up to `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await partition_count(settings, settings.events_topic)
        except LookupError:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)


def forget(settings: Settings, expected: Expected | None) -> None:
    if expected is not None:
        ROUTES.forget(settings.events_topic, expected)


async def watch(settings: Settings, partitions: int, metrics: Metrics, every: float | None = None) -> None:
    """While serving: the event topic's partition count, on /metrics (`medledger_event_partitions`), and an
    error logged once each time it differs anew from the configured one. Records keep being read: those found off
    their region's partition are refused as misrouted, and kept."""
    said = partitions
    while True:
        await asyncio.sleep(WATCH_EVERY if every is None else every)
        try:
            found = await partition_count(settings, settings.events_topic)
        except Exception as error:
            log.warning("could not read the event topic's partition count: %s", error)
            continue
        metrics.partitions.set(found)
        if found != said and found != partitions:
            log.error(
                "%s; events of regions now placed elsewhere are refused as misrouted until then",
                mismatch(settings.events_topic, found, partitions),
                extra={"topic": settings.events_topic, "partitions": found, "configured": partitions},
            )
        said = found
