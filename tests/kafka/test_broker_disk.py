"""The broker scripts/kafka/run starts has no replica: what it acknowledged must reach its disk within a second, not
wait in the page cache for the kernel's writeback (thirty seconds by default), which a crash of the machine loses
and which, written back all at once, holds PostgreSQL's commits up behind it on a shared disk."""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from consumers.topics import ensure_topics
from tests.kafka.broker import TestBroker
from tests.kafka.conftest import own_settings

CACHESTAT = 451  # Linux 6.5 and later, on every architecture
_LIBC = ctypes.CDLL(None, use_errno=True)


class _Range(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_uint64), ("length", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]


def dirty_pages(path: Path) -> int | None:
    """Pages of the file the page cache holds unwritten; None where the kernel cannot tell (before 6.5)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        stat = _Stat()
        if _LIBC.syscall(CACHESTAT, fd, ctypes.byref(_Range(0, 0)), ctypes.byref(stat), 0) != 0:
            return None
        return stat.dirty + stat.writeback
    finally:
        os.close(fd)


async def _produce(bootstrap: str, topic: str, records: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        value = os.urandom(4_000)
        await asyncio.gather(*[await producer.send(topic, value, partition=0) for _ in range(records)])
    finally:
        await producer.stop()


def test_the_local_broker_flushes_what_it_acknowledged_to_its_disk(tmp_path):
    root = tmp_path / "kafka"
    broker = TestBroker(root, own=True)
    try:
        settings = own_settings(broker.bootstrap)
        asyncio.run(ensure_topics(settings, partitions=1))
        asyncio.run(_produce(broker.bootstrap, settings.events_topic, 500))  # 2 MB
        acknowledged = time.monotonic()
        segment = root / "data" / f"{settings.events_topic}-0" / "00000000000000000000.log"
        assert segment.stat().st_size > 2_000_000
        if dirty_pages(segment) is None:
            # No cachestat(2) here: the broker is at least configured to flush (the behaviour is checked where the
            # kernel can show it).
            properties = (root / "server.properties").read_text().splitlines()
            assert "log.flush.interval.ms=1000" in properties
            assert "log.flush.scheduler.interval.ms=1000" in properties
            assert "log.initial.task.delay.ms=1000" in properties
            return
        # The flusher looks every second; the kernel would write the pages back only after thirty. Ten seconds
        # leave room for a slow disk and still tell the two apart.
        while dirty_pages(segment) and time.monotonic() - acknowledged < 10:
            time.sleep(0.1)
        assert dirty_pages(segment) == 0, "the broker left acknowledged records in the page cache for 10 s"
    finally:
        broker.stop()
