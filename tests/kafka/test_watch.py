"""`medledger watch --until-idle SECONDS` on the real broker: it prints what is on the topic and exits 0 by itself
once nothing new has come for that long, so a walkthrough's next step runs in the same terminal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from consumers.settings import Settings, environment
from consumers.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]


def _watch(settings: Settings, *arguments: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "MEDLEDGER_"))}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    env |= {"MEDLEDGER_SETTLEMENTS_TOPIC": settings.settlements_topic} | environment(settings)
    command = [sys.executable, "-m", "consumers.cli", "watch", *arguments]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def _send(settings: Settings, *records: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for record in records:
            # one key, so one partition: the order they were sent in is the order they are read in
            await producer.send_and_wait(settings.settlements_topic, orjson.dumps(record), key=b"member")
    finally:
        await producer.stop()


def test_watch_until_idle_prints_the_topic_and_exits_0_once_nothing_new_came_for_that_long(settings):
    asyncio.run(ensure_topics(settings))
    asyncio.run(_send(settings, *({"settlement_id": f"S{n}"} for n in range(3))))

    started = time.monotonic()
    watching = _watch(settings, "--from-beginning", "--until-idle", "2")
    out, err = watching.communicate(timeout=120)
    took = time.monotonic() - started

    assert watching.returncode == 0, err[-3000:]
    assert [orjson.loads(line)["settlement_id"] for line in out.splitlines()] == ["S0", "S1", "S2"]
    assert 2 <= took < 60, took  # idle for 2 s after the last record, then out; not the pytest timeout


def test_a_record_that_arrives_while_watching_starts_the_idle_time_again(settings):
    asyncio.run(ensure_topics(settings))
    watching = _watch(settings, "--from-beginning", "--until-idle", "6")
    time.sleep(3)
    asyncio.run(_send(settings, {"settlement_id": "LATE"}))
    sent = time.monotonic()
    out, err = watching.communicate(timeout=120)
    after_the_record = time.monotonic() - sent

    assert watching.returncode == 0, err[-3000:]
    assert [orjson.loads(line)["settlement_id"] for line in out.splitlines()] == ["LATE"]
    assert after_the_record >= 5, after_the_record  # 6 s from the record's arrival, not from the start
