"""What goes wrong in production, on the real broker: a consumer killed mid-batch, a poison message, a broker
restart. Nothing is lost, nothing applied twice, and the settlement topic (deduplicated by id) is complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from consumers.settings import environment
from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.kafka.broker import TestBroker
from tests.kafka.streams import Topic, generated, publish, relayed_all, run, serving, unique, without_seq
from tests.kafka.streams import until as _until
from tests.ledger.helpers import (
    EXAMPLES,
    IM_PARAMETERS,
    PRODUCED,
    example_lines,
    fetch,
    plain,
    refusing_outbox,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]


def _serve(settings, database, batch_size: int, log: Path, stopping_at: str | None = None) -> subprocess.Popen:
    """`medledger serve` in a process of its own; `stopping_at` a point of `tests.kafka.stopping_serve`."""
    env = {
        **os.environ,
        "DATABASE_URL": plain(database.owner_url),
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "MEDLEDGER_GROUP_ID": settings.group_id,
        "MEDLEDGER_EVENTS_TOPIC": settings.events_topic,
        "MEDLEDGER_SETTLEMENTS_TOPIC": settings.settlements_topic,
        "MEDLEDGER_REJECTIONS_TOPIC": settings.rejections_topic,
        "MEDLEDGER_BATCH_SIZE": str(batch_size),
        "MEDLEDGER_METRICS_PORT": "",
        **environment(settings),
    }
    command = [
        sys.executable,
        "-m",
        *(("tests.kafka.stopping_serve", stopping_at) if stopping_at else ("consumers.cli",)),
        "serve",
        "--parameters",
        str(EXAMPLES / "params/150000-illustrative.toml"),
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def _count(database, table: str = PRODUCED) -> int:
    return fetch(database, f"SELECT count(*) FROM {table}")[0][0]


def _stop_mid_stream(settings, database, lines: list[str], log: Path, stop: signal.Signals) -> int:
    """Publish `lines`, serve them, and send `stop` once 600 are in the ledger: the exit code."""
    run(publish(settings, lines))
    first = _serve(settings, database, batch_size=20, log=log)
    try:
        assert _until(lambda: _count(database) >= 600), log.read_text()[-2000:]
    finally:
        first.send_signal(stop)
        code = first.wait(90)
    assert _count(database) < len(lines), "the consumer finished before it was stopped: the test proved nothing"
    return code


def _serve_the_rest(settings, database, lines: list[str], log: Path) -> None:
    """A second start settles and publishes the rest of `lines`, then stops with SIGTERM. It resumed exactly after
    the last committed batch: the stored offsets cover every record once, and no record was read twice into the
    ledger (the event-id guard acknowledging a repeat would log it as a duplicate)."""
    second = _serve(settings, database, batch_size=20, log=log)
    try:
        assert _until(lambda: _count(database) == len(lines) and relayed_all(database)), log.read_text()[-2000:]
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()[-2000:]
    offsets = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", settings.group_id)
    assert offsets[0][0] == len(lines)
    assert "acknowledged as repeats" not in log.read_text()


def test_a_consumer_killed_mid_stream_loses_nothing_and_applies_nothing_twice(settings, database, tmp_path):
    lines = generated(3_000, 200)
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    settlements = unique(offline, "settlement_id")
    movements = unique(offline, "movement_id")
    log = tmp_path / "serve.log"
    _stop_mid_stream(settings, database, lines, log, signal.SIGKILL)

    _serve_the_rest(settings, database, lines, log)
    assert _count(database, "ledger_settlements") == len(settlements)
    assert _count(database, "ledger_movements") == len(movements)
    assert verify(database, batch_size=500).ok

    topic = Topic(settings, settings.settlements_topic)
    got = topic.read_until(lambda values: len(unique(values, "settlement_id")) >= len(settlements))
    got = run(got)
    assert {k: without_seq(v) for k, v in unique(got, "settlement_id").items()} == {
        k: without_seq(v) for k, v in settlements.items()
    }
    assert set(unique(got, "movement_id")) == set(movements)


def test_sigterm_mid_stream_commits_the_batch_in_hand_publishes_what_committed_and_exits_cleanly(
    settings, database, tmp_path
):
    """Stopped while it is busy: the batch in hand commits (or rolls back), what committed is on the topics
    before the process exits 0, and the next start goes on from there, reading no record twice."""
    lines = generated(3_000, 200)
    settlements = unique(settle_lines(lines, parse_parameters(IM_PARAMETERS)), "settlement_id")
    log = tmp_path / "serve.log"
    assert _stop_mid_stream(settings, database, lines, log, signal.SIGTERM) == 0, log.read_text()[-3000:]
    assert relayed_all(database), "what committed was not all published at shutdown"
    said = log.read_text()
    assert not any(failure in said for failure in ("batch not committed", "batch not settled", "relay failed"))

    _serve_the_rest(settings, database, lines, log)
    got = run(
        Topic(settings, settings.settlements_topic).read_until(
            lambda v: len(unique(v, "settlement_id")) >= len(settlements)
        )
    )
    assert set(unique(got, "settlement_id")) == set(settlements)
    assert verify(database, batch_size=500).ok


def test_a_poison_message_is_refused_into_the_rejection_topic_and_the_stream_goes_on(settings, database):
    good = example_lines("nanjing")
    poison = [
        "{not json",
        "[1, 2]",
        good[0].replace('"member.enrolled"', '"member.teleported"'),
        "\x00\x00\x00\x00\x07binary",  # a framed Avro record, say: a text column refuses the NUL as it is
    ]
    assert poison[2] != good[0]
    lines = poison + good
    expected = [r for r in settle_lines(good) if "rejected" not in r]

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database):
            refused = Topic(settings, settings.rejections_topic)
            await refused.read_until(lambda values: len(values) >= len(poison))
            settled = Topic(settings, settings.settlements_topic)
            await settled.read_until(lambda values: len(values) >= len(expected))
            return refused.values(), settled.values()

    refused, settled = run(scenario())
    assert len(refused) == len(poison)
    by_payload = {
        orjson.dumps(r["payload"]).decode() if not isinstance(r["payload"], str) else r["payload"]: r for r in refused
    }
    assert by_payload["{not json"]["reason"] == "invalid_event"
    assert by_payload["{not json"]["detail"].startswith("invalid JSON")
    assert str(by_payload["{not json"]["rejected"]).startswith(settings.events_topic + "/")  # named by its offset
    assert by_payload["[1,2]"]["detail"] == "event must be a JSON object, got array"
    assert by_payload["\\u0000\\u0000\\u0000\\u0000\x07binary"]["reason"] == "invalid_event"
    assert any("unknown event type" in r["detail"] for r in refused)
    assert sorted(_canonical(r) for r in settled) == sorted(_canonical(r) for r in expected)
    kept = fetch(database, "SELECT payload FROM ledger_rejections ORDER BY rejection_id")
    assert {row[0] for row in kept} >= {"{not json", "[1, 2]"}


def test_a_broker_restart_mid_stream_is_ridden_out(settings, database, kafka, tmp_path, monkeypatch):
    own = None
    if not kafka.restartable:  # a broker named by KAFKA_BOOTSTRAP_SERVERS is not this test's to restart
        kafka = own = TestBroker(tmp_path / "kafka", own=True)
        settings = replace(settings, bootstrap_servers=own.bootstrap)
    try:
        _ride_out_a_restart(settings, database, kafka, monkeypatch)
    finally:
        if own is not None:
            own.stop()


def _ride_out_a_restart(settings, database, kafka, monkeypatch) -> None:
    """The broker goes away and comes back while the service is settling what it fetched and the relay is
    publishing: the service goes on running meanwhile (the restart runs in a thread), and afterwards every
    event is in the ledger once and every output on the topic."""
    import asyncio

    from ledger.service import LedgerService

    real_prepare = LedgerService.prepare

    async def slow_prepare(self, *args, **kwargs):
        prepared = await real_prepare(self, *args, **kwargs)
        await asyncio.sleep(0.2)  # so that the first half is still being settled when the broker stops
        return prepared

    monkeypatch.setattr(LedgerService, "prepare", slow_prepare)
    lines = generated(600, 60)
    half = len(lines) // 2
    want = {_identity(r) for r in settle_lines(lines, parse_parameters(IM_PARAMETERS)) if "rejected" not in r}

    async def scenario():
        await publish(settings, lines[:half])
        async with serving(settings, database, IM_PARAMETERS, batch_size=20):
            await _async_until(lambda: _count(database) > 0)
            at_restart = await asyncio.to_thread(_count, database)
            await asyncio.to_thread(kafka.restart)
            await publish(settings, lines[half:])
            await _async_until(lambda: _count(database) == len(lines) and relayed_all(database))
        settled = Topic(settings, settings.settlements_topic)
        return at_restart, await settled.read_until(lambda values: {_identity(r) for r in values} >= want)

    at_restart, got = run(scenario())
    assert at_restart < half  # the broker stopped mid-stream, not after it
    assert _count(database) == len(lines)
    assert {_identity(r) for r in got} == want
    assert verify(database).ok


def _identity(record: dict) -> str:
    return record.get("settlement_id") or record.get("movement_id") or f"incentive {record['member_id']}"


async def _async_until(condition, timeout: float = 120.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def _canonical(record: dict) -> bytes:
    return orjson.dumps(without_seq(record), option=orjson.OPT_SORT_KEYS)


def test_a_batch_that_does_not_commit_is_read_again_and_nothing_settled_after_it_commits_first(
    settings, database, monkeypatch
):
    """Batches are settled while the one before commits: when that commit fails, the batch settled on top of it
    must be dropped with it, and both read again from the stored offsets."""
    import ledger.db.recorder as recorder_module

    lines = generated(800, 60)
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    expected = unique([r for r in offline if "rejected" not in r], "settlement_id")
    calls = {"n": 0}

    def sometimes() -> bool:
        calls["n"] += 1
        return calls["n"] in (3, 4, 9)

    monkeypatch.setattr(recorder_module, "add_outbox", refusing_outbox(recorder_module.add_outbox, sometimes))

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database, IM_PARAMETERS, batch_size=40) as service:
            topic = Topic(settings, settings.settlements_topic)
            await topic.read_until(lambda values: len(unique(values, "settlement_id")) >= len(expected), timeout=120)
            return topic, service.metrics.failed._value.get()

    topic, failed = run(scenario())
    assert failed >= 3 and calls["n"] > 9
    assert _count(database) == len(lines)  # every event once: none skipped, none twice
    stored = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", settings.group_id)
    assert stored[0][0] == len(lines)
    got = unique(topic.values(), "settlement_id")
    assert {k: without_seq(v) for k, v in got.items()} == {k: without_seq(v) for k, v in expected.items()}
    assert verify(database).ok


def test_records_of_a_topic_made_again_are_settled_not_skipped_behind_the_stored_offsets(settings, database):
    """The event topic was deleted and made again after the service consumed from it, so the offsets stored with
    the ledger are past the end of the new log. The new topic is read from its start: its records settle, and the
    partition's rebase is counted."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    from consumers.topics import ensure_topics
    from tests import builders as b

    first = example_lines("nanjing")
    b.fresh()
    later = [
        b.as_line(e)
        for e in (
            b.enrolled("AGAIN", b.NANJING, on="2023-01-01"),
            b.contribution("AGAIN", b.NANJING, "2023-03", "9000.00"),
        )
    ]

    async def remake_the_event_topic() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([settings.events_topic])
            deadline = time.monotonic() + 60
            while settings.events_topic in await admin.list_topics():
                assert time.monotonic() < deadline, "the topic was not deleted"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
        for _ in range(50):  # the broker may still be removing the old partitions
            try:
                await ensure_topics(settings)
                return
            except Exception:
                await asyncio.sleep(0.2)
        await ensure_topics(settings)

    async def scenario():
        await publish(settings, first)
        async with serving(settings, database):
            await _async_until(lambda: _count(database) == len(first))
        await remake_the_event_topic()
        await publish(settings, later)
        async with serving(settings, database) as service:
            await _async_until(lambda: _count(database) == len(first) + len(later))
            return service.metrics.rebased._value.get()

    rebased = run(scenario())
    assert rebased >= 1
    assert fetch(database, "SELECT count(*) FROM ledger_events WHERE member_id = 'AGAIN'")[0][0] == 2
    assert verify(database).ok


def test_an_event_that_fails_every_time_is_refused_on_its_own_and_its_partition_goes_on(
    settings, database, monkeypatch
):
    """Settling one visit raises every time (a defect its data meets). Its batch fails again and again; then the
    records are settled one at a time, that visit is refused as unprocessable, with its payload and the error,
    and everything after it in its partition (its region) settles."""
    from policies.engine import Engine

    lines = example_lines("nanjing")
    events = [orjson.loads(line) for line in lines]
    reversed_visits = {e["visit_id"] for e in events if e["event_type"] == "visit.reversed"}
    target = next(
        e
        for e in events[len(events) // 2 :]
        if e["event_type"] == "visit.submitted" and e["visit_id"] not in reversed_visits
    )
    real_apply = Engine.apply

    def apply(self, event, seq):
        if event.event_id == target["event_id"]:
            raise ZeroDivisionError("a defect this event meets")
        return real_apply(self, event, seq)

    monkeypatch.setattr(Engine, "apply", apply)
    rest = [line for line, event in zip(lines, events, strict=True) if event is not target]
    expected = [r for r in settle_lines(rest) if "rejected" not in r]

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database) as service:
            refused = Topic(settings, settings.rejections_topic)
            await refused.read_until(lambda values: any(r["reason"] == "unprocessable" for r in values), timeout=90)
            settled = Topic(settings, settings.settlements_topic)
            await settled.read_until(lambda values: len(values) >= len(expected))
            await _async_until(lambda: _count(database) == len(rest))
            return refused.values(), settled.values(), service.metrics.unprocessable._value.get()

    refused, settled, counted = run(scenario())
    (unprocessable,) = [r for r in refused if r["reason"] == "unprocessable"]
    assert unprocessable["rejected"] == target["event_id"]
    assert "ZeroDivisionError: a defect this event meets" in unprocessable["detail"]
    assert counted == 1
    (kept,) = fetch(database, "SELECT seq, event_id FROM ledger_rejections WHERE reason = 'unprocessable'")
    assert kept["seq"] is None and kept["event_id"] == target["event_id"]
    assert sorted(_canonical(r) for r in settled) == sorted(_canonical(r) for r in expected)
    assert _count(database) == len(rest)
    assert verify(database).ok


def test_when_every_record_fails_alike_no_more_than_a_few_are_refused(settings, database, monkeypatch):
    """A defect every visit meets is no bad record: after three visits were refused one after another, the
    consumer refuses no more and retries; once the defect is gone, the rest settles."""
    import asyncio

    from policies.engine import Engine

    lines = example_lines("nanjing")
    defect = {"on": True}
    real_apply = Engine.apply

    def apply(self, event, seq):
        if defect["on"] and event.event_type == "visit.submitted":
            raise ZeroDivisionError("a defect every visit meets")
        return real_apply(self, event, seq)

    monkeypatch.setattr(Engine, "apply", apply)

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database) as service:
            unprocessable = service.metrics.unprocessable
            await _async_until(lambda: unprocessable._value.get() >= 3, timeout=120)
            await asyncio.sleep(8)  # time enough for a fourth, were one to come
            refused_while_broken = unprocessable._value.get()
            defect["on"] = False
            await _async_until(lambda: _count(database) == len(lines) - 3, timeout=90)
            return refused_while_broken, unprocessable._value.get()

    while_broken, in_all = run(scenario())
    assert while_broken == in_all == 3
    assert fetch(database, "SELECT count(*) FROM ledger_rejections WHERE reason = 'unprocessable'")[0][0] == 3


@pytest.mark.parametrize("point", ["before-publish", "before-record"])
def test_a_crash_between_the_ledger_commit_and_the_relay_loses_no_record(point, settings, database, tmp_path):
    """Killed where the ledger has committed a batch and its outbox records, but the relay has not published them
    (`before-publish`), or has published them and not recorded so (`before-record`): the next start publishes
    what the topic lacks, from the outbox. Delivery is at least once; deduplicated by id the topic is complete,
    and no event is applied twice."""
    lines = example_lines("ningxia", "weihai", "nanjing", "inner-mongolia")
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    settlements = unique(offline, "settlement_id")
    log = tmp_path / "serve.log"
    run(publish(settings, lines))
    first = _serve(settings, database, batch_size=20, log=log, stopping_at=point)
    published: list[dict] = []
    try:
        assert _until(lambda: _count(database) == len(lines)), log.read_text()[-2000:]
        if point == "before-record":  # something reached the broker
            published = run(Topic(settings, settings.settlements_topic).read_until(lambda values: values, 30))
            assert published, log.read_text()[-2000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    positions = "SELECT (SELECT max(position) FROM outbox), (SELECT max(position) FROM outbox_relay)"
    outbox, relayed = fetch(database, positions)[0]
    assert outbox and relayed is None, "the relay recorded a position: it did not stop where the test says"
    if point == "before-publish":
        assert run(Topic(settings, settings.settlements_topic).read_until(lambda values: False, 3)) == []

    _serve_the_rest(settings, database, lines, log)
    got = run(
        Topic(settings, settings.settlements_topic).read_until(
            lambda values: len(unique(values, "settlement_id")) >= len(settlements)
        )
    )
    assert {k: without_seq(v) for k, v in unique(got, "settlement_id").items()} == {
        k: without_seq(v) for k, v in settlements.items()
    }
    if point == "before-record":  # what reached the broker before the crash was published again
        assert sum(value == published[0] for value in got) >= 2
    assert _count(database, "ledger_settlements") == len(settlements)
    assert verify(database, batch_size=500).ok
