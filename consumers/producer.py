"""Publishing many records at once: records are appended to per-partition batches and each batch is sent whole,
which costs a fraction of a send per record. Partitions are the ones Kafka's default partitioner gives the key,
so a member's records stay on one partition, in order."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from consumers.settings import Settings
from consumers.topics import security_options
from ledger.authority import LedgerSigner

HEADERS = [("content-type", b"application/json")]


class BatchProducer:
    def __init__(
        self, settings: Settings, linger_ms: int = 0, batch_bytes: int = 1_000_000, signer: LedgerSigner | None = None
    ):
        """`signer`: a `ledger.authority.LedgerSigner`, which signs every record (headers of its own)."""
        self.settings, self.linger_ms, self.batch_bytes = settings, linger_ms, batch_bytes
        self.signer = signer
        self.producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._spread = itertools.count()

    async def start(self) -> None:
        # aiokafka binds a producer to the running event loop, so it is made here rather than in __init__.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,  # a retried batch neither duplicates nor reorders within its partition
            linger_ms=self.linger_ms,  # batches are made here, whole; nothing to wait for
            # One batch a partition at a time is in flight: large batches, so a chunk needs few round trips.
            max_batch_size=self.batch_bytes,
            max_request_size=max(self.batch_bytes + 65_536, 1_048_576),
            client_id="medledger-relay",
            **security_options(self.settings),
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    @property
    def _started(self) -> AIOKafkaProducer:
        if self.producer is None:
            raise RuntimeError("the producer is used before start()")
        return self.producer

    async def partition_of(self, topic: str, key: str | None) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(await self._started.partitions_for(topic))
        if key is None:
            return next(self._spread) % count
        return (murmur2(key.encode()) & 0x7FFFFFFF) % count

    async def publish(self, records: list[tuple[str, str | None, str]]) -> None:
        """(topic, key, JSON value) records, in order per partition; returns once the broker has them all."""
        open_batches: dict[tuple[str, int], Any] = {}  # aiokafka's BatchBuilder
        sent = []
        for topic, key, value in records:
            partition = await self.partition_of(topic, key)
            encoded_key, encoded = (key.encode() if key is not None else None), value.encode()
            headers = HEADERS if self.signer is None else HEADERS + self.signer.headers(encoded)
            batch = open_batches.get((topic, partition))
            if batch is not None and batch.append(key=encoded_key, value=encoded, timestamp=None, headers=headers):
                continue
            if batch is not None:  # full: on its way, in order, before anything later of its partition
                sent.append(await self._started.send_batch(batch, topic, partition=partition))
            batch = open_batches[(topic, partition)] = self._started.create_batch()
            # A fresh batch takes any record, however large; the relay keeps values under the broker's limit.
            batch.append(key=encoded_key, value=encoded, timestamp=None, headers=headers)
        for (topic, partition), batch in open_batches.items():
            sent.append(await self._started.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
