"""A healthy start logs nothing at WARNING or above: `serve` on a broker that has just started (no offsets topic
yet, so its group coordinator is not there at first) and on topics it makes itself, then `reporting`, as JSON lines
an operator's alerting can trust. Each line of stderr is a JSON log record; none is a warning, an error, or one of
the lines of noise that used to be there (alembic's plugins, FastStream's note about topic creation)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from consumers.settings import Settings, environment
from tests.kafka.broker import TestBroker
from tests.kafka.conftest import own_settings
from tests.kafka.streams import publish, run
from tests.ledger.helpers import example_lines, plain

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("setup plugin", "Auto create topics", "GroupCoordinatorNotAvailable")


@pytest.fixture(scope="module")
def fresh_broker(tmp_path_factory):
    """A broker of its own, just started: no consumer group has ever asked it for a coordinator."""
    broker = TestBroker(tmp_path_factory.mktemp("kafka-fresh"), own=True)
    yield broker
    broker.stop()


def _environment(settings: Settings, database) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "MEDLEDGER_"))}
    return (
        env
        | environment(settings)
        | {
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "MEDLEDGER_GROUP_ID": settings.group_id,
            "MEDLEDGER_EVENTS_TOPIC": settings.events_topic,
            "MEDLEDGER_SETTLEMENTS_TOPIC": settings.settlements_topic,
            "MEDLEDGER_REJECTIONS_TOPIC": settings.rejections_topic,
            "MEDLEDGER_REPORTING_GROUP_ID": settings.reporting_group_id,
            "MEDLEDGER_METRICS_PORT": "",
            "DATABASE_URL": plain(database.owner_url),
            "MEDLEDGER_REPORTING_DATABASE_URL": plain(database.owner_url),
        }
    )


def _run_until(command: str, env: dict[str, str], log: Path, started: str, then=None) -> list[str]:
    """`medledger COMMAND` until it logs `started`, `then()` done, and a few seconds more; stopped as an operator
    stops it (SIGTERM). Its stderr lines."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", command],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 120
        while started not in log.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert started in log.read_text(), log.read_text()[-3000:]
        if then is not None:
            then()
        time.sleep(3)  # what a consumer logs once it has joined its group and polled
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    assert code == 0, log.read_text()[-3000:]
    return log.read_text().splitlines()


def _loud(lines: list[str]) -> list[str]:
    """The lines that are no JSON record, or one at WARNING or above, or known noise."""
    loud = []
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            loud.append(line)
            continue
        if record.get("level") not in ("debug", "info") or any(noise in record.get("message", "") for noise in NOISE):
            loud.append(line)
    return loud


def test_a_healthy_serve_then_reporting_start_logs_nothing_at_warning_or_above(fresh_broker, database, tmp_path):
    settings = own_settings(fresh_broker.bootstrap)
    env = _environment(settings, database)

    def produce() -> None:
        run(publish(settings, example_lines("nanjing")[:5]))

    served = _run_until("serve", env, tmp_path / "serve.log", '"medledger serving"', then=produce)
    reported = _run_until("reporting", env, tmp_path / "reporting.log", "started successfully")

    assert any('"medledger serving"' in line for line in served)
    assert _loud(served) == []
    assert _loud(reported) == []
