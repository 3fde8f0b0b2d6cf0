"""medledger against a broker that requires SASL: the commands read KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* from the
environment and every client they make (topic admin, producer, consumer, the relay's producer, the reporting
consumer) authenticates; wrong credentials and a client without SASL are refused, promptly and by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from consumers.settings import Settings
from consumers.topics import partition_count, security_options
from ledger.offline import settle_lines
from tests.kafka.broker import TestBroker
from tests.kafka.conftest import own_settings
from tests.kafka.streams import run, unique, without_seq
from tests.ledger.helpers import EXAMPLES, example_lines, fetch, plain

ROOT = Path(__file__).resolve().parents[2]
USERS = {"broker": "broker-secret", "medledger": "s3cret-medledger"}
TIMEOUT = 60  # seconds, for a command that should have finished long before


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    # Always a broker of its own: one named by KAFKA_BOOTSTRAP_SERVERS may not require SASL.
    broker = TestBroker(tmp_path_factory.mktemp("kafka-sasl"), sasl_users=USERS)
    yield broker
    broker.stop()


@pytest.fixture
def sasl(sasl_broker) -> Settings:
    """The service's user on the SASL broker, with topics and groups of the test's own."""
    return own_settings(
        sasl_broker.bootstrap,
        "s",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="medledger",
        sasl_password=USERS["medledger"],
    )


def _environment(settings: Settings, database=None) -> dict[str, str]:
    """The settings as the commands read them; nothing Kafka- or medledger-related inherited from the caller."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "MEDLEDGER_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": settings.security_protocol,
            "KAFKA_SASL_MECHANISM": settings.sasl_mechanism,
            "MEDLEDGER_GROUP_ID": settings.group_id,
            "MEDLEDGER_EVENTS_TOPIC": settings.events_topic,
            "MEDLEDGER_SETTLEMENTS_TOPIC": settings.settlements_topic,
            "MEDLEDGER_REJECTIONS_TOPIC": settings.rejections_topic,
            "MEDLEDGER_REPORTING_GROUP_ID": settings.reporting_group_id,
            "MEDLEDGER_BATCH_SIZE": str(settings.batch_size),
            "MEDLEDGER_METRICS_PORT": "",
        }
    )
    if settings.sasl_username is not None:
        env["KAFKA_SASL_USERNAME"] = settings.sasl_username
    if settings.sasl_password is not None:
        env["KAFKA_SASL_PASSWORD"] = settings.sasl_password
    if database is not None:
        env["DATABASE_URL"] = env["MEDLEDGER_REPORTING_DATABASE_URL"] = plain(database.owner_url)
    return env


def _medledger(settings: Settings, *arguments: str, database=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "consumers.cli", *arguments]
    env = _environment(settings, database)
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)


def _start(settings: Settings, database, command: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", command],
            env=_environment(settings, database),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _stop(process: subprocess.Popen, log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert code == 0, log.read_text()[-3000:]


async def _read(settings: Settings, topics: list[str], done, timeout: float = 60.0) -> list[dict]:
    """Every record of the topics from the beginning, read as `settings`' user, until done(values)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **security_options(settings),
    )
    await consumer.start()
    values: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(values):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                values.extend(orjson.loads(record.value) for record in records)
    finally:
        await consumer.stop()
    return values


def _until(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _exists(settings: Settings, topic: str) -> bool:
    try:
        run(partition_count(settings, topic))
    except LookupError:
        return False
    return True


def _canonical(record: dict) -> bytes:
    return orjson.dumps(without_seq(record), option=orjson.OPT_SORT_KEYS)


def test_produce_serve_relay_and_reporting_authenticate_with_sasl_plain(sasl, database, tmp_path):
    lines = example_lines("nanjing")
    offline = settle_lines(lines)
    outputs = [record for record in offline if "rejected" not in record]
    rejections = [record for record in offline if "rejected" in record]
    settlements = unique(outputs, "settlement_id")
    assert settlements  # the file settles visits: the reporting check below means something

    produced = _medledger(sasl, "produce", str(EXAMPLES / "nanjing.jsonl"))
    assert produced.returncode == 0, produced.stderr[-3000:]
    assert f"produced {len(lines)} events to {sasl.events_topic}" in produced.stderr
    for topic in (sasl.events_topic, sasl.settlements_topic, sasl.rejections_topic):
        assert run(partition_count(sasl, topic)) == 4

    log = tmp_path / "medledger.log"
    serve = _start(sasl, database, "serve", log)
    try:
        reporting = _start(sasl, database, "reporting", log)
        try:
            got = run(
                _read(
                    sasl,
                    [sasl.settlements_topic, sasl.rejections_topic],
                    lambda values: len(values) >= len(outputs) + len(rejections),
                )
            )
            reported = _until(lambda: _reported(database) == len(settlements) and _relayed_all(database), timeout=30)
            assert reported, log.read_text()[-3000:]
        finally:
            _stop(reporting, log)
    finally:
        _stop(serve, log)

    # The relay published, as the service's user, exactly what `medledger settle` prints for the file.
    settled = [record for record in got if "rejected" not in record]
    refused = [record for record in got if "rejected" in record]
    assert sorted(map(_canonical, settled)) == sorted(map(_canonical, outputs))
    assert sorted(map(_canonical, refused)) == sorted(map(_canonical, rejections))
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == len(lines)
    stored = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", sasl.group_id)
    assert stored[0][0] == len(lines)
    ids = fetch(database, "SELECT settlement_id FROM reporting.settlements", owner=True)
    assert {row[0] for row in ids} == set(settlements)

    # `medledger watch` reads the settlement topic as the same user
    watched = _medledger(sasl, "watch", "--from-beginning", "--limit", str(len(outputs)))
    assert watched.returncode == 0, watched.stderr[-3000:]
    shown = [orjson.loads(line) for line in watched.stdout.splitlines()]
    assert sorted(map(_canonical, shown)) == sorted(map(_canonical, settled))


def test_scram_sha_256_users_produce_and_consume(sasl):
    scram = replace(sasl, sasl_mechanism="SCRAM-SHA-256")
    produced = _medledger(scram, "produce", str(EXAMPLES / "nanjing.jsonl"))
    assert produced.returncode == 0, produced.stderr[-3000:]

    lines = example_lines("nanjing")
    events = run(_read(scram, [scram.events_topic], lambda values: len(values) >= len(lines)))
    assert sorted(map(_canonical, events)) == sorted(_canonical(orjson.loads(line)) for line in lines)


@pytest.mark.parametrize(
    ("mechanism", "message"),
    [
        ("PLAIN", "Invalid username or password"),
        ("SCRAM-SHA-256", "invalid credentials with SASL mechanism SCRAM-SHA-256"),
    ],
)
def test_a_wrong_password_is_refused_promptly_as_an_authentication_failure(sasl, mechanism, message):
    wrong = replace(sasl, sasl_mechanism=mechanism, sasl_password="not-the-password")
    started = time.monotonic()
    done = _medledger(wrong, "produce", str(EXAMPLES / "nanjing.jsonl"))
    took = time.monotonic() - started

    assert done.returncode != 0
    assert "SaslAuthenticationFailed" in done.stderr and message in done.stderr, done.stderr[-3000:]
    assert "Unable to bootstrap" in done.stderr  # aiokafka gives up instead of retrying
    assert took < 30, f"refused only after {took:.1f} s"
    assert not _exists(sasl, sasl.events_topic)  # nothing was done with the refused connection


@pytest.mark.parametrize("command", ["serve", "reporting"])
def test_the_services_stop_at_start_up_on_a_wrong_password_rather_than_retrying(sasl, database, command):
    wrong = replace(sasl, sasl_password="not-the-password")
    started = time.monotonic()
    done = _medledger(wrong, command, database=database)
    took = time.monotonic() - started

    assert done.returncode != 0
    assert "SaslAuthenticationFailed" in done.stderr and "Invalid username or password" in done.stderr, done.stderr
    assert took < 30, f"stopped only after {took:.1f} s"


def test_a_client_without_sasl_is_refused_by_the_listener(sasl):
    plaintext = replace(sasl, security_protocol="PLAINTEXT", sasl_username=None, sasl_password=None)
    started = time.monotonic()
    done = _medledger(plaintext, "produce", str(EXAMPLES / "nanjing.jsonl"))
    took = time.monotonic() - started

    assert done.returncode != 0
    # The listener answers nothing but the SASL handshake: the client's first metadata request ends the connection.
    assert "Unable to bootstrap" in done.stderr and "closed" in done.stderr, done.stderr[-3000:]
    assert "SaslAuthenticationFailed" not in done.stderr
    assert took < 30, f"refused only after {took:.1f} s"
    assert not _exists(sasl, sasl.events_topic)


def _reported(database) -> int:
    try:
        return fetch(database, "SELECT count(*) FROM reporting.settlements", owner=True)[0][0]
    except asyncpg.UndefinedTableError:  # the reporting consumer has not created its table yet
        return -1


def _relayed_all(database) -> bool:
    row = fetch(
        database, "SELECT (SELECT max(position) FROM outbox) AS last, (SELECT max(position) FROM outbox_relay)"
    )[0]
    return row[0] is not None and row[0] == row[1]
