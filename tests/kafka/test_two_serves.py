"""Two `medledger serve` processes in one consumer group, on the real broker and one PostgreSQL ledger.

The event topic has two partitions, and the two regions of the stream fall on different ones. Each process is
assigned one partition, settles its region, and commits while the other commits: no session ever waits for an
append lock (sampled from `pg_locks` throughout), every event is in the ledger once, every output is on the
settlement topic once, and `medledger replay --verify` verifies with a head per stream. Then one process is killed
(SIGKILL) mid-stream: the group rebalances, the survivor takes its partition over from the stored offsets and
finishes it, its relay taking over the outbox too; nothing is lost or applied twice, and the ledger verifies again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError

from consumers.partitioning import partition_for
from consumers.settings import Settings, environment
from consumers.topics import ensure_topics
from ledger.db.instances import instance_lock
from ledger.db.outbox import REJECTIONS
from ledger.offline import settle_lines
from ledger.streams import NO_REGION, lock_key
from policies.parameters import parse_parameters
from tests.kafka.streams import Topic, generated, publish, relayed_all, run, until
from tests.ledger.helpers import EXAMPLES, IM_PARAMETERS, PRODUCED, fetch, plain

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 2
WEIHAI, NANJING = "371000", "320100"
HOME = {region: partition_for(region, PARTITIONS) for region in (WEIHAI, NANJING)}
assert len(set(HOME.values())) == PARTITIONS, HOME  # the two regions' events are on different partitions
BATCH = 25  # records a batch at most: each process has dozens of batches to commit while the other does
INSTANCES = ("a", "b")


def _two_regions() -> list[bytes]:
    """A generated stream of the two regions (enrolments, contributions, visits, reversals, year closes), in the
    order produced."""
    return [line for line in generated(14_000, 560) if orjson.loads(line)["region"] in HOME]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Serve:
    """`medledger serve` in a process of its own, as instance `name` of the group, with its /metrics."""

    def __init__(self, settings: Settings, database, name: str, log: Path):
        self.name, self.log, self.port = name, log, _free_port()
        self.instance = f"{settings.group_id}-{name}"
        env = {
            **os.environ,
            "DATABASE_URL": plain(database.owner_url),
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "MEDLEDGER_GROUP_ID": settings.group_id,
            "MEDLEDGER_GROUP_INSTANCE_ID": self.instance,
            "MEDLEDGER_EVENTS_TOPIC": settings.events_topic,
            "MEDLEDGER_SETTLEMENTS_TOPIC": settings.settlements_topic,
            "MEDLEDGER_REJECTIONS_TOPIC": settings.rejections_topic,
            "MEDLEDGER_BATCH_SIZE": str(BATCH),
            "MEDLEDGER_METRICS_PORT": str(self.port),
            **environment(settings),
        }
        command = [sys.executable, "-m", "consumers.cli", "serve", "--partitions", str(PARTITIONS)]
        command += ["--parameters", str(EXAMPLES / "params/150000-illustrative.toml")]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"))

    def metric(self, name: str) -> float:
        """A counter of its /metrics (summed over labels)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read().decode()
        found = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(name)]
        return sum(float(value) for key, value in found if key == name or key.startswith(name + "{"))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(90)

    def said(self) -> str:
        return f"--- serve {self.name}:\n" + self.log.read_text(errors="replace")[-2500:]


class LockWaits:
    """Samples `pg_locks` every few milliseconds, in a thread of its own, for advisory locks a session waits for."""

    def __init__(self, database):
        self.url = plain(database.owner_url)
        self.samples = 0
        self.waits: Counter[int] = Counter()  # lock key -> samples that found a session waiting for it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), name="lock-waits")

    async def _sample(self) -> None:
        connection = await asyncpg.connect(self.url)
        try:
            while not self._stop.is_set():
                rows = await connection.fetch(
                    "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                self.samples += 1
                for high, low in rows:  # a bigint key is kept as its high and low 32 bits
                    self.waits[int.from_bytes(((high << 32) | low).to_bytes(8, "big"), "big", signed=True)] += 1
                await asyncio.sleep(0.003)
        finally:
            await connection.close()

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def named(self) -> dict[str, int]:
        names = {lock_key(region): f"append lock of {region or 'input naming no region'}" for region in HOME}
        names[lock_key(NO_REGION)] = "append lock of input naming no region"
        return {names.get(key, f"advisory lock {key}"): count for key, count in self.waits.items()}


async def _assignment(settings: Settings) -> dict[str, list[int]]:
    """The group's members as the broker describes them: instance id -> partitions of the event topic assigned,
    while the group is stable (empty otherwise)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        await admin.start()
        [response] = await admin.describe_consumer_groups([settings.group_id])
    except KafkaError:  # a broker just started has no coordinator at first; a loaded one may not answer at once
        return {}
    finally:
        await admin.close()
    group = response.to_object()["groups"][0]
    if group["state"] != "Stable":
        return {}
    held = {}
    for member in group["members"]:
        if not member["member_assignment"]:
            continue
        assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
        # a static member's id is its instance id, a dash and a unique suffix
        held[member["member_id"].rsplit("-", 5)[0]] = sorted(
            p for topic, partitions in assignment.assignment if topic == settings.events_topic for p in partitions
        )
    return held


async def _end_offsets(settings: Settings) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(settings.events_topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


def _offsets(database, settings: Settings) -> dict[int, tuple[int, int | None]]:
    """partition -> (epoch, next offset) of the group's claims in the ledger."""
    rows = fetch(
        database,
        "SELECT partition, epoch, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2",
        settings.group_id,
        settings.events_topic,
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def _settled(database) -> int:
    return fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0]


def _verified(settings: Settings, database) -> str:
    """`medledger replay --verify`'s output; it must exit 0."""
    env = {**os.environ, "DATABASE_URL": plain(database.owner_url), "COLUMNS": "250", **environment(settings)}
    done = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "replay", "--verify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _interleaving(database) -> tuple[float, int]:
    """How the two regions' commits overlap in time: the share of the shorter region's span (from its first
    transaction to its last, by `recorded_at`) that lies within the other's, and how often, in time order, a
    transaction of one region follows one of the other."""
    rows = fetch(
        database,
        f"SELECT DISTINCT region, recorded_at FROM {PRODUCED} AND region = ANY($1::text[]) ORDER BY recorded_at",
        list(HOME),
    )
    spans = {region: [row[1] for row in rows if row[0] == region] for region in HOME}
    first = max(times[0] for times in spans.values())
    last = min(times[-1] for times in spans.values())
    shorter = min((times[-1] - times[0]).total_seconds() for times in spans.values())
    overlap = max((last - first).total_seconds(), 0.0) / max(shorter, 1e-6)
    switches = sum(1 for before, after in zip(rows, rows[1:]) if before[0] != after[0])
    return overlap, switches


def _outputs(settings: Settings, expected: dict[str, dict]) -> list[dict]:
    topic = Topic(settings, settings.settlements_topic)
    return run(topic.read_until(lambda values: {v.get("settlement_id") for v in values} >= set(expected), 120))


def test_two_serves_settle_their_own_partitions_in_parallel_and_one_killed_leaves_its_partition_to_the_other(
    kafka, settings, database, tmp_path
):
    lines = _two_regions()
    half = len(lines) // 2
    first, second = lines[:half], lines[half:]
    by_region = Counter(orjson.loads(line)["region"] for line in first)
    assert min(by_region.values()) > 1_500, by_region  # both processes have many batches to commit
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    settlements = {r["settlement_id"]: r for r in offline if "settlement_id" in r}
    first_settlements = {
        r["settlement_id"]: r for r in settle_lines(first, parse_parameters(IM_PARAMETERS)) if "settlement_id" in r
    }

    # Started together on topics not made yet: both make them, and run the start-up's migration check, at once.
    serves = {name: Serve(settings, database, name, tmp_path / f"serve-{name}.log") for name in INSTANCES}
    try:
        # -- both running: each assigned a partition of its own, claimed in the ledger -----------------------
        held: dict[str, list[int]] = {}

        def one_each() -> bool:
            nonlocal held
            for serve in serves.values():
                assert serve.process.poll() is None, serve.said()
            held = run(_assignment(settings))
            claimed = _offsets(database, settings)
            return sorted(held.values()) == [[0], [1]] and len(claimed) == PARTITIONS

        assert until(one_each, 120, 0.2), "".join(s.said() for s in serves.values()) + f"\nassigned {held}"
        owner = {held[serve.instance][0]: serve for serve in serves.values()}  # partition -> its process
        claims = _offsets(database, settings)

        # -- a stream of both regions, settled by both at once --------------------------------------------
        with LockWaits(database) as locks:
            run(publish(settings, first))
            ends = run(_end_offsets(settings))
            assert sum(ends.values()) == len(first)
            assert until(lambda: _settled(database) == len(first) and relayed_all(database), 120, 0.2), "".join(
                s.said() for s in serves.values()
            )
        assert locks.samples > 100, "pg_locks was hardly sampled: the check below would prove nothing"
        assert locks.waits == Counter(), (
            f"sessions waited for advisory locks ({locks.samples} samples): {locks.named()}"
        )

        # Each partition stayed with the process the broker assigned it (its claim's epoch unchanged), which
        # consumed exactly that partition's records, and its region's events all came from it.
        after = _offsets(database, settings)
        assert {p: epoch for p, (epoch, _) in after.items()} == {p: epoch for p, (epoch, _) in claims.items()}
        assert {p: offset for p, (_, offset) in after.items()} == ends
        for partition, serve in owner.items():
            assert serve.metric("medledger_events_consumed_total") == ends[partition], serve.said()
        sources = fetch(
            database,
            f"SELECT region, split_part(source, '/', 2)::int AS partition, count(*) FROM {PRODUCED} "
            "GROUP BY 1, 2 ORDER BY 1, 2",
        )
        assert {(row[0], row[1]): row[2] for row in sources} == {(r, HOME[r]): n for r, n in by_region.items()}

        # Their transactions overlapped: each region's commits span most of the other's, alternating throughout.
        overlap, switches = _interleaving(database)
        assert overlap > 0.5 and switches > 10, (overlap, switches)

        # Every event once, every output once, both streams verified.
        assert fetch(database, f"SELECT count(DISTINCT event_id) FROM {PRODUCED}")[0][0] == len(first)
        assert fetch(database, "SELECT count(*) FROM ledger_settlements")[0][0] == len(first_settlements)
        published = _outputs(settings, first_settlements)
        ids = Counter(record["settlement_id"] for record in published if "settlement_id" in record)
        assert set(ids) == set(first_settlements)
        assert max(ids.values()) == 1, [key for key, count in ids.items() if count > 1][:5]
        said = _verified(settings, database)
        assert "verified" in said and "NOT verified" not in said, said
        assert all(f"head {region}:" in said for region in HOME), said

        # -- the relay's leader killed mid-stream: the survivor takes its partition and the outbox over -----
        leader = next(s for s in serves.values() if s.metric("medledger_outbox_relayed_total") > 0)
        survivor = next(s for s in serves.values() if s is not leader)
        (lost,) = [p for p, s in owner.items() if s is leader]
        ends_before = ends
        run(publish(settings, second))
        ends = run(_end_offsets(settings))
        assert until(lambda: (_offsets(database, settings)[lost][1] or 0) >= ends_before[lost] + 3 * BATCH, 120, 0.2)
        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait(30)
        at_kill = _offsets(database, settings)[lost][1]
        assert at_kill < ends[lost], "the process finished before it was killed: the test proved nothing"
        relayed_at_kill = fetch(database, "SELECT position FROM outbox_relay")[0][0]

        def taken_over() -> bool:
            assert survivor.process.poll() is None, survivor.said()
            return run(_assignment(settings)) == {survivor.instance: [0, 1]}

        assert until(taken_over, 90, 0.5), survivor.said()
        assert until(lambda: _settled(database) == len(lines) and relayed_all(database), 120, 0.2), survivor.said()
        final = _offsets(database, settings)
        assert {p: offset for p, (_, offset) in final.items()} == ends
        assert final[lost][0] > after[lost][0]  # claimed anew by the survivor
        assert fetch(database, f"SELECT count(DISTINCT event_id) FROM {PRODUCED}")[0][0] == len(lines)
        assert fetch(database, "SELECT count(*) FROM ledger_settlements")[0][0] == len(settlements)
        assert "acknowledged as repeats" not in survivor.log.read_text()

        # At least once on the topic: only what the dead relay had published past the position it recorded may
        # be there twice; every settlement is there.
        published = _outputs(settings, settlements)
        ids = Counter(record["settlement_id"] for record in published if "settlement_id" in record)
        assert set(ids) == set(settlements)
        positions = {
            row[1]: row[0]
            for row in fetch(
                database,
                "SELECT position, value::jsonb ->> 'settlement_id' FROM outbox WHERE stream <> $1",
                REJECTIONS,
            )
        }
        assert all(positions[key] > relayed_at_kill for key, count in ids.items() if count > 1)
        said = _verified(settings, database)
        assert "verified" in said and "NOT verified" not in said, said
        assert all(f"head {region}:" in said for region in HOME), said
        assert survivor.stop() == 0, survivor.said()
    finally:
        for serve in serves.values():
            if serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait(30)


def test_a_second_serve_under_an_instance_id_in_use_is_refused_and_the_first_goes_on(
    kafka, settings, database, tmp_path
):
    """Two processes under one group instance id would have the broker fence each other by turns, each rejoin
    claiming the partitions anew, until one is fenced for good and runs on consuming nothing. The second start is
    refused with the reason (exit 2); the first keeps its partitions and its claims, and goes on settling."""
    lines = _two_regions()[:300]
    run(ensure_topics(settings, PARTITIONS))
    first = Serve(settings, database, "a", tmp_path / "first.log")
    second = None
    try:
        assert until(lambda: len(_offsets(database, settings)) == PARTITIONS, 120, 0.2), first.said()
        claims = _offsets(database, settings)
        second = Serve(settings, database, "a", tmp_path / "second.log")  # the same instance id
        assert second.process.wait(60) == 2, second.said()
        assert "served by another process" in second.log.read_text(), second.said()

        run(publish(settings, lines))
        assert until(lambda: _settled(database) == len(lines), 120, 0.2), first.said()
        assert {p: epoch for p, (epoch, _) in _offsets(database, settings).items()} == {
            p: epoch for p, (epoch, _) in claims.items()
        }
        assert first.stop() == 0, first.said()
    finally:
        for serve in (first, second):
            if serve is not None and serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait(30)


def _lock_holder(database, instance: str, settings: Settings) -> int | None:
    """The backend that holds `instance`'s lock, as pg_locks shows it."""
    found = fetch(
        database,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND ((classid::bigint << 32) | objid::bigint) = $1",
        instance_lock(settings.group_id, instance),
        owner=True,
    )
    return found[0][0] if found else None


def test_a_serve_takes_its_instance_lock_again_when_its_connection_goes_and_stops_when_another_took_it(
    kafka, settings, database, tmp_path
):
    """The lock lives as long as its connection. Lost (a restart of the database, a terminated session), it is
    taken again on a new connection while serve goes on settling; taken meanwhile by another process, serve stops
    with the reason (exit 2) rather than have the broker fence the two by turns."""
    lines = _two_regions()[:300]
    run(ensure_topics(settings, PARTITIONS))
    first = Serve(settings, database, "a", tmp_path / "first.log")
    try:
        assert until(lambda: len(_offsets(database, settings)) == PARTITIONS, 120, 0.2), first.said()
        holder = _lock_holder(database, first.instance, settings)
        assert holder is not None
        fetch(database, "SELECT pg_terminate_backend($1)", holder, owner=True)
        assert until(lambda: _lock_holder(database, first.instance, settings) not in (None, holder), 30, 0.1), (
            first.said()
        )
        run(publish(settings, lines[:150]))
        assert until(lambda: _settled(database) == 150, 120, 0.2), first.said()

        async def take_it_meanwhile() -> asyncpg.Connection:
            other = await asyncpg.connect(plain(database.owner_url))
            pid = await other.fetchval(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                " AND ((classid::bigint << 32) | objid::bigint) = $1",
                instance_lock(settings.group_id, first.instance),
            )
            await other.execute("SELECT pg_terminate_backend($1)", pid)
            key = instance_lock(settings.group_id, first.instance)
            while not await other.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await asyncio.sleep(0.01)
            return other

        loop = asyncio.new_event_loop()
        try:
            other = loop.run_until_complete(take_it_meanwhile())
            assert first.process.wait(60) == 2, first.said()
            assert "served by another process" in first.log.read_text(), first.said()
            loop.run_until_complete(other.close())
        finally:
            loop.close()
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait(30)
