"""`medledger produce` on the real broker: a line too large for the topic is reported and skipped, the rest is
produced; a broker that cannot be reached is waited for a bounded time, then the command says so in one line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from consumers.settings import Settings, environment
from tests.kafka.streams import Topic
from tests.ledger.helpers import example_lines

ROOT = Path(__file__).resolve().parents[2]


def _medledger(settings: Settings, *arguments: str, **extra: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "MEDLEDGER_"))}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers, "MEDLEDGER_EVENTS_TOPIC": settings.events_topic}
    env |= {"MEDLEDGER_SETTLEMENTS_TOPIC": settings.settlements_topic}
    env |= {"MEDLEDGER_REJECTIONS_TOPIC": settings.rejections_topic} | environment(settings) | extra
    command = [sys.executable, "-m", "consumers.cli", "produce", *arguments]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_line_too_large_for_the_topic_is_reported_and_skipped_and_the_rest_produced(settings, tmp_path):
    lines = example_lines("nanjing")
    huge = json.dumps({"event_id": "HUGE", "facility_id": "F" * 5_000_000})  # 5 MB
    middle = len(lines) // 2
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines[:middle] + [huge] + lines[middle:]) + "\n")

    produced = _medledger(settings, str(events))

    assert produced.returncode == 1, produced.stderr[-3000:]
    assert "Traceback" not in produced.stderr
    skipped = re.findall(
        r"line (\d+) skipped: ([\d,]+) bytes, over the topic's limit of ([\d,]+) bytes", produced.stderr
    )
    assert len(skipped) == 1, produced.stderr[-3000:]
    line, size, limit = skipped[0]
    assert int(line) == middle + 1 and int(size.replace(",", "")) > 5_000_000
    assert int(limit.replace(",", "")) == 1_048_588  # the broker's default max.message.bytes
    summary = f"produced {len(lines)} events to {settings.events_topic}; 1 line(s) skipped, too large for the topic"
    assert summary in produced.stderr
    on_topic = asyncio.run(Topic(settings, settings.events_topic).read_until(lambda got: len(got) >= len(lines)))
    assert sorted(record["event_id"] for record in on_topic) == sorted(json.loads(line)["event_id"] for line in lines)


def test_an_unreachable_broker_is_waited_for_the_time_set_then_named_in_one_line(settings, tmp_path):
    with socket.socket() as unused:  # a port where nothing listens
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    nowhere = Settings(**{**settings.__dict__, "bootstrap_servers": f"127.0.0.1:{port}"})
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(example_lines("nanjing")) + "\n")

    started = time.monotonic()
    produced = _medledger(nowhere, str(events), MEDLEDGER_BROKER_WAIT_SECONDS="4")
    took = time.monotonic() - started

    assert produced.returncode == 1
    said = produced.stderr.strip().splitlines()
    assert len(said) == 1, produced.stderr[-3000:]
    assert f"cannot reach the broker at 127.0.0.1:{port}" in said[0] and "waited 4 s" in said[0]
    assert 4 <= took < 60  # the wait set, and the interpreter's start on a loaded machine
