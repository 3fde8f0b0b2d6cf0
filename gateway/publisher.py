"""Publishing the gateway's contract events to the event topic, keyed and partitioned as `medledger produce`
does it (`consumers.partitioning`), so the ledger reads them in order with everything else of their region."""

from __future__ import annotations

from consumers.broker import make_broker
from consumers.partitioning import routing
from consumers.settings import Settings
from consumers.topics import ensure_topics, partition_count


class EventPublisher:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.broker = None
        self.partitions = 0

    async def start(self) -> None:
        await ensure_topics(self.settings)
        self.partitions = await partition_count(self.settings, self.settings.events_topic)
        self.broker = make_broker(self.settings)
        await self.broker.connect()

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.stop()

    async def publish(self, line: bytes) -> None:
        """Returns once the broker holds the event (acks=all)."""
        key, partition = routing(line, self.partitions)
        await self.broker.publish(
            line,
            topic=self.settings.events_topic,
            key=key,
            partition=partition,
            headers={"content-type": "application/json"},
        )
