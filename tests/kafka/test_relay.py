"""The outbox relay: whatever commits reaches the topics, whoever wrote it, in order per member."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import urllib.request
from dataclasses import replace
from datetime import timedelta

import orjson

import consumers.app
from consumers.app import Service
from consumers.producer import BatchProducer
from consumers.topics import ensure_topics
from ledger.intake import from_lines
from ledger.offline import settle_lines
from ledger.service import LedgerService
from tests import builders as b
from tests.kafka.streams import Topic, publish, relayed_all, run, serving, unique
from tests.ledger.helpers import PRODUCED, example_lines, fetch


def test_records_committed_by_a_file_ingest_are_published_too(settings, database):
    lines = example_lines("weihai")
    expected = [r for r in settle_lines(lines) if "rejected" not in r]

    async def scenario():
        async with serving(settings, database):
            async with LedgerService(database) as writer:  # another writer, not the consumer
                await writer.ingest(from_lines(lines, "weihai.jsonl"))
            topic = Topic(settings, settings.settlements_topic)
            return await topic.read_until(lambda values: len(values) >= len(expected))

    got = run(scenario())
    assert len(unique(got, "settlement_id")) == len(unique(expected, "settlement_id"))
    assert len(unique(got, "movement_id")) == len(unique(expected, "movement_id"))
    relayed = fetch(database, "SELECT position FROM outbox_relay")[0][0]
    assert relayed == fetch(database, "SELECT max(position) FROM outbox")[0][0]


def test_a_commit_by_another_process_wakes_the_relay(settings, database):
    """The relay hears of other writers' commits from PostgreSQL (NOTIFY), not only at its idle poll: with the
    poll an hour apart, what a file ingest commits is still published."""
    lines = example_lines("nanjing")
    expected = unique([r for r in settle_lines(lines) if "settlement_id" in r], "settlement_id")

    async def scenario():
        async with serving(settings, database) as service:
            service.relay.idle_seconds = 3600
            await asyncio.sleep(1)  # past the wait it may have begun with the default
            async with LedgerService(database) as writer:
                await writer.ingest(from_lines(lines, "nanjing.jsonl"))
            topic = Topic(settings, settings.settlements_topic)
            return await topic.read_until(lambda values: len(unique(values, "settlement_id")) >= len(expected), 20)

    assert len(unique(run(scenario()), "settlement_id")) == len(expected)


def test_batches_split_when_full_and_records_larger_than_a_batch_still_go_in_order(settings):
    topic_name = settings.settlements_topic
    sizes = [50, 900, 3_000, 20, 700, 5_000, 10, 1_200] * 5
    records = [
        (topic_name, "member-a" if n % 2 else "member-b", orjson.dumps({"n": n, "pad": "x" * size}).decode())
        for n, size in enumerate(sizes)
    ]

    async def scenario():
        await ensure_topics(settings)
        producer = BatchProducer(settings, batch_bytes=2_048)
        await producer.start()
        try:
            await producer.publish(records)
        finally:
            await producer.stop()
        topic = Topic(settings, topic_name)
        await topic.read_until(lambda values: len(values) >= len(records))
        return topic

    topic = run(scenario())
    by_key: dict[bytes, list[int]] = {}
    for record in topic.records:
        by_key.setdefault(record.key, []).append(orjson.loads(record.value)["n"])
    assert by_key[b"member-a"] == [n for n in range(len(sizes)) if n % 2]
    assert by_key[b"member-b"] == [n for n in range(len(sizes)) if not n % 2]
    assert len(topic.records) == len(records)


def test_a_rejection_too_large_for_the_broker_is_published_with_a_pointer_to_its_kept_payload():
    from consumers.relay import MAX_VALUE_BYTES, publishable

    huge = "x" * (MAX_VALUE_BYTES + 10)
    record = {"rejected": "e1", "reason": "invalid_event", "detail": "unknown field", "payload": {"junk": huge}}
    value = publishable(orjson.dumps(record).decode())
    shown = orjson.loads(value)
    assert len(value) < MAX_VALUE_BYTES and shown["rejected"] == "e1" and shown["reason"] == "invalid_event"
    assert (
        shown["payload"]["omitted"].endswith("bytes, kept in ledger_rejections")
        and len(shown["payload"]["sha256"]) == 64
    )
    small = orjson.dumps({"settlement_id": "S1"}).decode()
    assert publishable(small) == small


def _metrics_port(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return replace(settings, metrics_port=port), port


def _lags(body: str, topic: str) -> dict[int, float]:
    found = re.findall(rf'medledger_consumer_lag{{partition="(\d+)",topic="{re.escape(topic)}"}} (\S+)', body)
    return {int(partition): float(value) for partition, value in found}


def test_the_metrics_endpoint_counts_what_the_service_did(settings, database, monkeypatch):
    monkeypatch.setattr(consumers.app, "LAG_EVERY", 0.2)
    settings, port = _metrics_port(settings)
    lines = example_lines("nanjing")

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database):
            for _ in range(200):
                body = await asyncio.to_thread(_scrape, port)
                consumed = f"medledger_events_consumed_total {float(len(lines))}" in body
                caught_up = "medledger_outbox_pending 0.0" in body  # the relay too
                if consumed and caught_up and _lags(body, settings.events_topic) == dict.fromkeys(range(4), 0.0):
                    return body
                await asyncio.sleep(0.1)
            return body

    body = run(scenario())
    assert f"medledger_events_consumed_total {float(len(lines))}" in body
    settled = fetch(database, "SELECT count(*) FROM ledger_settlements")[0][0]
    assert f"medledger_settlements_total {float(settled)}" in body
    assert "medledger_batch_seconds_count" in body and "medledger_outbox_pending 0.0" in body
    # every partition of the event topic is held by this one consumer, and none is behind
    assert _lags(body, settings.events_topic) == dict.fromkeys(range(4), 0.0)


def test_the_service_sweep_refuses_what_waited_too_long_and_counts_it(settings, database, monkeypatch):
    """serve sweeps the parking area every minute (here every half second), with its parking time."""
    monkeypatch.setattr(consumers.app, "SWEEP_EVERY", timedelta(seconds=0.5))
    settings, port = _metrics_port(settings)
    b.fresh()
    contribution = b.contribution("NEVER", b.NANJING, "2023-03", "9000.00")

    async def scenario():
        await publish(settings, [b.as_line(contribution)])
        service = Service(settings, LedgerService(database, park_ttl=timedelta(0)))
        async with service.app:
            rejected = await Topic(settings, settings.rejections_topic).read_until(lambda values: len(values) >= 1)
            for _ in range(100):
                body = await asyncio.to_thread(_scrape, port)
                if "medledger_rejections_total 1.0" in body:
                    break
                await asyncio.sleep(0.1)
            return rejected, body

    rejected, body = run(scenario())
    (record,) = rejected
    assert record["rejected"] == contribution["event_id"] and record["reason"] == "member_not_enrolled"
    assert "no enrolment arrived within" in record["detail"]
    assert "medledger_events_parked_total 1.0" in body and "medledger_rejections_total 1.0" in body
    # consumed once, when it was parked: the sweep reads nothing from the broker
    assert "medledger_events_consumed_total 1.0" in body


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_a_record_committed_while_the_relay_reads_an_empty_outbox_is_published_without_waiting(
    settings, database, monkeypatch
):
    """The wake-up of a batch that commits while the relay is reading the outbox must not be lost to the
    relay's idle timeout."""
    import time

    import consumers.relay as relay_module
    from consumers.relay import Relay
    from tests.ledger.helpers import execute

    real_pending = relay_module.pending
    state = {"calls": 0, "woken_at": None}

    async def scenario():
        await ensure_topics(settings)
        producer = BatchProducer(settings)
        await producer.start()
        async with LedgerService(database) as service:
            relay = Relay(
                service,
                producer,
                {"settlements": settings.settlements_topic, "rejections": settings.rejections_topic},
                idle_seconds=30,
            )

            async def pending_then_commit(raw, after, limit, gaps):
                rows = await real_pending(raw, after, limit, gaps)
                state["calls"] += 1
                if state["calls"] == 1 and not rows:
                    # a batch commits right after the relay found nothing, and wakes it
                    await asyncio.to_thread(
                        execute,
                        database,
                        "INSERT INTO outbox (stream, key, value) VALUES ('settlements', 'W', '{\"w\":1}')",
                    )
                    state["woken_at"] = time.monotonic()
                    relay.wake()
                return rows

            monkeypatch.setattr(relay_module, "pending", pending_then_commit)
            try:
                async with _running(relay):
                    topic = Topic(settings, settings.settlements_topic)
                    await topic.read_until(lambda values: len(values) >= 1, timeout=20)
                    arrived = time.monotonic()
            finally:
                await producer.stop()
        return topic.values(), arrived

    values, arrived = run(scenario())
    assert values == [{"w": 1}]
    assert state["woken_at"] is not None and arrived - state["woken_at"] < 10  # not the 30 s idle timeout


def test_the_services_own_batches_are_handed_to_its_relay_and_another_writers_are_read(settings, database, monkeypatch):
    """What the consumer settles and commits is published as it was handed over, with no read of the outbox; what
    another writer commits in between is read from the outbox. Either way each member's records reach the topics
    once, in ledger order, and the relay's recorded position catches up with the outbox."""
    import consumers.relay as relay_module
    from tests.kafka.streams import wait_for

    real_pending = relay_module.pending
    read: list[str] = []

    async def reading(raw, after, limit, gaps):
        rows = await real_pending(raw, after, limit, gaps)
        read.extend(row.value for row in rows)
        return rows

    monkeypatch.setattr(relay_module, "pending", reading)
    # A year close is settled the slow way, with nothing in flight, and read back: these have none.
    mine, mine_again = (
        [line for line in example_lines(region) if "year_closed" not in line] for region in ("ningxia", "nanjing")
    )
    theirs = example_lines("weihai")

    async def outbox_values() -> list[str]:
        return [row[0] for row in await asyncio.to_thread(fetch, database, "SELECT value FROM outbox")]

    async def scenario():
        async with serving(settings, database) as service:
            service.relay.idle_seconds = 3600  # no idle poll, which may read a batch between its COMMIT and hand-off
            await asyncio.sleep(1)  # past the wait it may have begun with the default
            assert await wait_for(lambda: _true(service.relay._leading is not None), 30)
            await publish(settings, mine)
            assert await wait_for(lambda: _settled(database, len(mine)), 60)
            handed = await outbox_values()
            assert await wait_for(lambda: _relayed(database), 30)
            async with LedgerService(database) as writer:
                await writer.ingest(from_lines(theirs, "weihai.jsonl"))
            others = [value for value in await outbox_values() if value not in set(handed)]
            await publish(settings, mine_again)
            assert await wait_for(lambda: _settled(database, len(mine) + len(theirs) + len(mine_again)), 60)
            assert await wait_for(lambda: _relayed(database), 30)
            topic = Topic(settings, settings.settlements_topic, settings.rejections_topic)
            total = len(await outbox_values())
            await topic.read_until(lambda values: len(values) >= total, 60)
            return handed, others, topic

    handed, others, topic = run(scenario())
    assert handed and others
    assert not set(handed) & set(read), "the consumer's own batches were read back from the outbox"
    assert set(others) <= set(read)
    in_outbox = fetch(database, "SELECT key, value FROM outbox ORDER BY position")
    by_key: dict[str | None, list[str]] = {}
    for key, value in in_outbox:
        by_key.setdefault(key, []).append(value)
    on_topics: dict[str | None, list[str]] = {}
    for record in topic.records:
        on_topics.setdefault(record.key.decode() if record.key else None, []).append(record.value.decode())
    assert on_topics == by_key


async def _true(value: bool) -> bool:
    return value


async def _settled(database, events: int) -> bool:
    return (await asyncio.to_thread(fetch, database, f"SELECT count(*) FROM {PRODUCED}"))[0][0] == events


async def _relayed(database) -> bool:
    return await asyncio.to_thread(relayed_all, database)


def _add(database, *values: str) -> list[tuple[int, tuple]]:
    """Outbox records written as another writer would, each with its position."""
    from tests.ledger.helpers import execute

    rows = []
    for value in values:
        execute(database, "INSERT INTO outbox (stream, key, value) VALUES ('settlements', 'M', $1)", value)
        position = fetch(database, "SELECT max(position) FROM outbox")[0][0]
        rows.append((position, ("settlements", "M", value)))
    return rows


class _Recorded:
    """A producer that keeps what it is given (the relay's choices are under test here, not the broker)."""

    def __init__(self):
        self.values: list[str] = []

    async def publish(self, records) -> None:
        self.values.extend(value for _, _, value in records)


def test_a_handed_batch_that_does_not_follow_on_is_read_from_the_outbox_instead(database, monkeypatch):
    """Records it was not handed before a batch (another writer's), and a read that stopped inside a batch: the
    relay reads the outbox, in chunks, and publishes each record once, in position order; a batch that follows on
    is published as handed, with no read."""
    import consumers.relay as relay_module
    from consumers.relay import Relay
    from ledger.db.outbox import Handoff
    from tests.kafka.streams import wait_for

    real_pending = relay_module.pending
    reads: list[int] = []

    async def reading(raw, after, limit, gaps):
        rows = await real_pending(raw, after, limit, gaps)
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(relay_module, "pending", reading)

    async def scenario():
        producer = _Recorded()
        async with LedgerService(database) as service:
            relay = Relay(service, producer, {"settlements": "s", "rejections": "r"}, chunk=2, idle_seconds=3600)
            async with _running(relay):
                assert await wait_for(lambda: _true(relay._leading is not None and bool(reads)), 30)
                await asyncio.sleep(0.5)  # its first read found nothing, and it waits
                await asyncio.to_thread(
                    _add, database, "other-1", "other-2", "other-3"
                )  # another writer's, never handed
                ours = await asyncio.to_thread(_add, database, "ours-4", "ours-5")
                relay.hand(Handoff(ours[0][0] - 1, ours[-1][0], [row for _, row in ours]))
                assert await wait_for(lambda: _true(len(producer.values) >= 5), 30)
                read_before = len(reads)
                follows = await asyncio.to_thread(_add, database, "ours-6", "ours-7")
                relay.hand(Handoff(ours[-1][0], follows[-1][0], [row for _, row in follows]))
                assert await wait_for(lambda: _true(len(producer.values) >= 7), 30)
                await asyncio.sleep(0.5)
                return producer.values, reads[read_before:], follows[-1][0]

    values, later_reads, last = run(scenario())
    assert values == ["other-1", "other-2", "other-3", "ours-4", "ours-5", "ours-6", "ours-7"]
    assert later_reads == [], "a batch that followed on was read back from the outbox"
    assert fetch(database, "SELECT position FROM outbox_relay")[0][0] == last


class _Sends(_Recorded):
    """Also what each send held: one list of values a call of `publish`."""

    def __init__(self):
        super().__init__()
        self.sends: list[list[str]] = []

    async def publish(self, records) -> None:
        self.sends.append([value for _, _, value in records])
        await super().publish(records)


def test_batches_handed_while_the_relay_was_busy_go_to_the_broker_in_one_send(database):
    """Batches that committed one after another while the relay was sending (or waiting) are acknowledged together:
    one round trip to the broker, not one a batch, in position order."""
    from consumers.relay import Relay
    from ledger.db.outbox import Handoff
    from tests.kafka.streams import wait_for

    async def scenario():
        producer = _Sends()
        async with LedgerService(database) as service:
            relay = Relay(service, producer, {"settlements": "s", "rejections": "r"}, idle_seconds=3600)
            async with _running(relay):
                assert await wait_for(lambda: _true(relay._leading is not None), 30)
                await asyncio.sleep(0.5)  # its first read found nothing, and it waits
                batches = [await asyncio.to_thread(_add, database, f"b{n}-1", f"b{n}-2") for n in range(3)]
                before = batches[0][0][0] - 1
                for batch in batches:  # handed one after another, before the relay runs again
                    relay.hand(Handoff(before, batch[-1][0], [row for _, row in batch]))
                    before = batch[-1][0]
                assert await wait_for(lambda: _true(len(producer.values) >= 6), 30)
                await asyncio.sleep(0.3)
                return producer.sends

    sends = run(scenario())
    assert sends == [["b0-1", "b0-2", "b1-1", "b1-2", "b2-1", "b2-2"]]


def test_while_the_relay_cannot_publish_it_counts_its_failures_and_how_far_behind_it_is(
    settings, database, monkeypatch
):
    """The broker refuses the relay's records: /metrics says so (failures, and the outbox records waiting)
    rather than keeping the last figure it had; once the broker takes them, everything is published."""
    import time

    lines = example_lines("nanjing")
    away = {"now": True}
    real_publish = BatchProducer.publish

    async def publish_unless_away(self, records):
        if away["now"]:
            raise ConnectionError("the broker is away")
        return await real_publish(self, records)

    monkeypatch.setattr(BatchProducer, "publish", publish_unless_away)

    async def until(condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(condition):
            assert time.monotonic() < deadline, "condition not met in time"
            await asyncio.sleep(0.1)

    async def scenario():
        async with serving(settings, database) as service:
            metrics = service.metrics
            async with LedgerService(database) as writer:
                await writer.ingest(from_lines(lines, "nanjing.jsonl"))
            await until(lambda: metrics.relay_failed._value.get() >= 2 and metrics.outbox_behind._value.get() > 0)
            behind = metrics.outbox_behind._value.get()
            away["now"] = False
            await until(lambda: relayed_all(database) and metrics.outbox_behind._value.get() == 0)
            return behind

    behind = run(scenario())
    assert behind == fetch(database, "SELECT count(*) FROM outbox")[0][0]


def test_a_relay_moved_back_past_what_was_pruned_says_so_and_publishes_what_is_kept(database, caplog):
    """`outbox prune` keeps the record at the relays' position; a position moved back before the oldest record kept
    (to publish again after a topic was lost) cannot bring back what was pruned: the relay says so as it leads."""
    from consumers.relay import Relay
    from tests.kafka.streams import wait_for
    from tests.ledger.helpers import execute

    rows = _add(database, *(f"r{n}" for n in range(1, 9)))
    first = rows[0][0]
    execute(database, "INSERT INTO outbox_relay (relay, position) VALUES ('medledger', $1)", first + 5)
    execute(database, "DELETE FROM outbox WHERE position < $1", first + 4, owner=True)  # pruned: r1 to r4
    execute(database, "UPDATE outbox_relay SET position = $1", first - 1, owner=True)  # moved back before them

    async def scenario():
        producer = _Recorded()
        async with LedgerService(database) as service:
            relay = Relay(service, producer, {"settlements": "s", "rejections": "r"}, idle_seconds=0.2)
            async with _running(relay):
                assert await wait_for(lambda: _true(len(producer.values) >= 4), 30)
                return producer.values

    with caplog.at_level("WARNING", logger="medledger.relay"):
        values = run(scenario())
    assert values == ["r5", "r6", "r7", "r8"]
    said = [record.getMessage() for record in caplog.records if record.name == "medledger.relay"]
    assert any(
        f"resumes at position {first - 1}, before the outbox's oldest record {first + 4}" in line for line in said
    ), said


@contextlib.asynccontextmanager
async def _running(relay):
    """The relay running on a task of its own while the block runs, stopped after it."""
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
