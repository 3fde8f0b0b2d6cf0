"""Producing to and reading from the real broker in tests."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import orjson
from aiokafka import AIOKafkaConsumer

from consumers.app import Service
from consumers.produce import produce
from consumers.settings import Settings
from consumers.topics import ensure_topics
from ledger.db.server import Database
from ledger.service import LedgerService
from tests.ledger.helpers import fetch


def as_bytes(lines) -> list[bytes]:
    return [line if isinstance(line, bytes) else line.encode() for line in lines]


async def publish(settings: Settings, lines) -> int:
    await ensure_topics(settings)
    return (await produce(settings, as_bytes(lines))).sent


@asynccontextmanager
async def serving(settings: Settings, db: Database, parameters: str = "", batch_size: int = 40):
    service = Service(settings, LedgerService(db, parameters, batch_size=batch_size))
    async with service.app:
        yield service


class Topic:
    """Every record of some topics from the beginning, as (key, value) in partition order."""

    def __init__(self, settings: Settings, *topics: str):
        self.settings, self.topics = settings, topics
        self.records: list = []

    async def read_until(self, done, timeout: float = 60.0) -> list:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    self.records.extend(records)
                if done(self.values()):
                    break
        finally:
            await consumer.stop()
        return self.values()

    def values(self) -> list[dict]:
        return [orjson.loads(record.value) for record in self.records]


def unique(records: list[dict], key: str) -> dict[str, dict]:
    """The topic deduplicated by a record id, as its consumers are told to do."""
    return {record[key]: record for record in records if key in record}


def without_seq(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "ledger_seq"}


def run(coroutine):
    return asyncio.run(coroutine)


def generated(events: int, members: int) -> list[bytes]:
    """A mixed stream of every region (enrolments, contributions, visits, reversals, year closes)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench/generate.py"
    out = subprocess.run(
        [sys.executable, str(script), "--events", str(events), "--members", str(members)],
        capture_output=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def until(condition, timeout: float = 120.0, every: float = 0.05) -> bool:
    """Whether `condition()` came true within `timeout` seconds, asked every `every` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


async def wait_for(condition, timeout: float = 120.0, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(every)
    return False


def relayed_all(database) -> bool:
    """The relay has published, and recorded, everything in the outbox."""
    row = fetch(database, "SELECT (SELECT max(position) FROM outbox), (SELECT max(position) FROM outbox_relay)")[0]
    return row[0] is not None and row[0] == row[1]
