"""medledger against brokers that require SASL, TLS with client certificates, or SASL over TLS: the commands read
KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_* from the environment and every client they make (topic admin,
producer, consumer, the relay's producer, the reporting consumer) authenticates; wrong credentials, an untrusted
broker certificate, a missing client certificate and a client without SASL are refused, promptly and by name."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from consumers.settings import Settings, environment
from consumers.topics import partition_count, security_options
from ledger.offline import settle_lines
from tests.kafka.broker import TestBroker
from tests.kafka.conftest import own_settings
from tests.kafka.streams import relayed_all, run, unique, without_seq
from tests.ledger.helpers import EXAMPLES, PRODUCED, example_lines, fetch, plain

ROOT = Path(__file__).resolve().parents[2]
USERS = {"broker": "broker-secret", "medledger": "s3cret-medledger"}
TIMEOUT = 60  # seconds, for a command that should have finished long before


# The brokers' client listeners: what each requires of a client.
LISTENERS = {
    "sasl": {"sasl_users": USERS},
    "mutual-tls": {"tls": "mutual"},
    "sasl-over-tls": {"sasl_users": USERS, "tls": "server"},
}


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    """A broker of each kind, started when a test first wants it. Always brokers of their own: one named by
    KAFKA_BOOTSTRAP_SERVERS may not be secured."""
    started: dict[str, TestBroker] = {}

    def broker(kind: str) -> TestBroker:
        if kind not in started:
            started[kind] = TestBroker(tmp_path_factory.mktemp(f"kafka-{kind}"), **LISTENERS[kind])
        return started[kind]

    yield broker
    for each in started.values():
        each.stop()


def _client(kind: str, broker: TestBroker) -> Settings:
    """The service's settings for the kind of broker: its user, the broker's CA and its client certificate, with
    topics and groups of the test's own."""
    user = {"sasl_mechanism": "PLAIN", "sasl_username": "medledger", "sasl_password": USERS["medledger"]}
    ca = str(broker.tls_dir / "ca.pem")
    if kind == "sasl":
        return own_settings(broker.bootstrap, "s", security_protocol="SASL_PLAINTEXT", **user)
    if kind == "mutual-tls":
        certificate = {"ssl_certfile": str(broker.tls_dir / "client.pem")}
        certificate["ssl_keyfile"] = str(broker.tls_dir / "client-key.pem")
        return own_settings(broker.bootstrap, "t", security_protocol="SSL", ssl_cafile=ca, **certificate)
    return own_settings(broker.bootstrap, "u", security_protocol="SASL_SSL", ssl_cafile=ca, **user)


@pytest.fixture
def sasl(brokers) -> Settings:
    return _client("sasl", brokers("sasl"))


@pytest.fixture
def mutual_tls(brokers) -> Settings:
    return _client("mutual-tls", brokers("mutual-tls"))


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
            **environment(settings),
        }
    )
    if settings.sasl_username is not None:
        env["KAFKA_SASL_USERNAME"] = settings.sasl_username
    if settings.sasl_password is not None:
        env["KAFKA_SASL_PASSWORD"] = settings.sasl_password
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(settings, name) is not None:
            env[f"KAFKA_{name.upper()}"] = getattr(settings, name)
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


@pytest.mark.parametrize("kind", list(LISTENERS))
def test_produce_serve_relay_reporting_and_watch_on_a_secured_broker(kind, brokers, database, tmp_path):
    secured = _client(kind, brokers(kind))
    lines = example_lines("nanjing")
    offline = settle_lines(lines)
    outputs = [record for record in offline if "rejected" not in record]
    rejections = [record for record in offline if "rejected" in record]
    settlements = unique(outputs, "settlement_id")
    assert settlements  # the file settles visits: the reporting check below means something

    produced = _medledger(secured, "produce", str(EXAMPLES / "nanjing.jsonl"))
    assert produced.returncode == 0, produced.stderr[-3000:]
    assert f"produced {len(lines)} events to {secured.events_topic}" in produced.stderr
    for topic in (secured.events_topic, secured.settlements_topic, secured.rejections_topic):
        assert run(partition_count(secured, topic)) == 4

    log = tmp_path / "medledger.log"
    serve = _start(secured, database, "serve", log)
    try:
        reporting = _start(secured, database, "reporting", log)
        try:
            got = run(
                _read(
                    secured,
                    [secured.settlements_topic, secured.rejections_topic],
                    lambda values: len(values) >= len(outputs) + len(rejections),
                )
            )
            reported = _until(lambda: _reported(database) == len(settlements) and relayed_all(database), timeout=30)
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
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == len(lines)
    stored = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", secured.group_id)
    assert stored[0][0] == len(lines)
    ids = fetch(database, "SELECT settlement_id FROM reporting.settlements", owner=True)
    assert {row[0] for row in ids} == set(settlements)

    # `medledger watch` reads the settlement topic as the same user
    watched = _medledger(secured, "watch", "--from-beginning", "--limit", str(len(outputs)))
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
    _refused_in_one_line(done.stderr)  # aiokafka gives up instead of retrying
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
    _refused_in_one_line(done.stderr)
    assert took < 30, f"stopped only after {took:.1f} s"


def test_a_client_without_sasl_is_refused_by_the_listener(sasl):
    plaintext = replace(sasl, security_protocol="PLAINTEXT", sasl_username=None, sasl_password=None)
    started = time.monotonic()
    done = _medledger(plaintext, "produce", str(EXAMPLES / "nanjing.jsonl"))
    took = time.monotonic() - started

    assert done.returncode != 0
    # The listener answers nothing but the SASL handshake: the client's first metadata request ends the connection.
    assert "closed" in done.stderr and "SaslAuthenticationFailed" not in done.stderr, done.stderr[-3000:]
    _refused_in_one_line(done.stderr)
    assert took < 30, f"refused only after {took:.1f} s"
    assert not _exists(sasl, sasl.events_topic)


@pytest.mark.parametrize(
    ("change", "seen", "unseen"),
    [
        # The system's CAs, which never signed the broker's certificate: the client refuses the broker.
        ({"ssl_cafile": None}, "CERTIFICATE_VERIFY_FAILED", None),
        # No client certificate: the broker ends the handshake, and the client sees the connection closed.
        ({"ssl_certfile": None, "ssl_keyfile": None}, "closed", "CERTIFICATE_VERIFY_FAILED"),
    ],
    ids=["untrusted-broker", "no-client-certificate"],
)
def test_tls_refuses_an_untrusted_broker_and_a_client_without_a_certificate(mutual_tls, change, seen, unseen):
    started = time.monotonic()
    done = _medledger(replace(mutual_tls, **change), "produce", str(EXAMPLES / "nanjing.jsonl"))
    took = time.monotonic() - started

    assert done.returncode != 0
    assert seen in done.stderr, done.stderr[-3000:]
    assert unseen is None or unseen not in done.stderr, done.stderr[-3000:]
    _refused_in_one_line(done.stderr)
    assert took < 30, f"refused only after {took:.1f} s"
    assert not _exists(mutual_tls, mutual_tls.events_topic)


def test_the_brokers_certificates_pass_strict_verification(brokers):
    # Python 3.13 verifies strictly by default (a CA must say it is one, with keyUsage): the certificates
    # scripts/kafka/run makes must pass that too, on every Python medledger supports.
    broker = brokers("mutual-tls")
    context = ssl.create_default_context(cafile=str(broker.tls_dir / "ca.pem"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(str(broker.tls_dir / "client.pem"), str(broker.tls_dir / "client-key.pem"))
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}
            assert dict(item[0] for item in tls.getpeercert()["subject"])["commonName"] == "medledger broker"


def _refused_in_one_line(stderr: str) -> None:
    """A refused connection ends the command with one line naming Kafka's error, not a traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stderr.rstrip().splitlines()[-1].startswith("medledger: Kafka: "), stderr[-3000:]
    assert "Unable to bootstrap" in stderr.rstrip().splitlines()[-1]


def _reported(database) -> int:
    try:
        return fetch(database, "SELECT count(*) FROM reporting.settlements", owner=True)[0][0]
    except asyncpg.UndefinedTableError:  # the reporting consumer has not created its table yet
        return -1
