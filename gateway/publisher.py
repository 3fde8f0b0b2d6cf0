"""Publishing the gateway's contract events to the event topic as any producer does: keyed and partitioned as
`medledger produce` does it (`consumers.partitioning`), so the ledger reads them in order with everything else of
their region, and signed as the gateway's own producer (MEDLEDGER_PRODUCER, MEDLEDGER_PRODUCER_KEY: see
docs/security.md), whose permissions in the producers file name the visit events and the facilities it speaks for."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from consumers.broker import make_broker
from consumers.partitioning import routing
from consumers.settings import Settings
from consumers.topics import partitions_made
from ledger.authority import signer_from


class EventPublisher:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.signer = signer_from(settings.producer, settings.producer_key, settings.producer_key_id)
        self.broker: KafkaBroker | None = None
        self.partitions = 0

    async def start(self) -> None:
        self.partitions = await partitions_made(self.settings, self.settings.events_topic)
        self.broker = make_broker(self.settings)
        await self.broker.connect()

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.stop()

    async def publish(self, line: bytes) -> None:
        """Returns once the broker holds the event (acks=all)."""
        if self.broker is None:
            raise RuntimeError("the gateway's publisher is used before start()")
        key, partition = routing(line, self.partitions, self.settings.partitioner)
        await self.broker.publish(
            line,
            topic=self.settings.events_topic,
            key=key,
            partition=partition,
            headers={"content-type": "application/json", **self.signer.headers(line)},
        )
