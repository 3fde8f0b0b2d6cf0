"""End-to-end through a real Kafka broker: events topic → `medledger serve` → ledger → outbox → settlement topic.

    python bench/kafka_pipeline.py --events 230000 --members 20000 --rate 1000 --seconds 30

1. Throughput: a generated stream (enrolments, contributions, visits, reversals, year closes; --events of them) is
   produced to the event topic first, then `medledger serve` is started (--serves of them, one consumer group,
   each its own partitions) and timed until every event is in the ledger and every output record is on the
   topics. Prints events/s (and visits/s), serve's CPU an event (all of them together), and each one's peak RSS.
2. Latency: with the service running, visits are produced at a steady --rate per second, first for --warmup
   seconds that are not measured, then for --seconds, and each one's time from send to the arrival of its
   settlement (or rejection) on the output topic is measured. Prints p50 / p99 / max. The warm-up is the steady
   state a running service is in: a broker started for the benchmark compiles its request paths for the first
   twenty seconds or so of traffic at this rate (its JIT threads take half a core meanwhile), and the page cache
   writes back what the throughput phase left.

Uses KAFKA_BOOTSTRAP_SERVERS or starts a broker with scripts/kafka/run in a temporary directory, and a fresh
embedded PostgreSQL in a temporary directory (or DATABASE_URL, which must point at an empty database).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proc import cpu_seconds, peak_rss, server_cpu  # noqa: E402
from consumers.partitioning import routing  # noqa: E402
from consumers.settings import Settings  # noqa: E402
from consumers.topics import ensure_topics  # noqa: E402
from ledger.adoption import ADOPTED  # noqa: E402
from policies import ids  # noqa: E402

PARAMETERS = ROOT / "examples/params/150000-illustrative.toml"


def free_port() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free ports")


def generate(events: int, members: int) -> list[bytes]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench/generate.py"), "--events", str(events), "--members", str(members)],
        capture_output=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def signed(settings: Settings, line: bytes) -> list[tuple[str, bytes]]:
    """The headers of the producer's signature (medledger refuses what is not signed: docs/security.md)."""
    from ledger.authority import signer_from

    signer = _signers.get(settings.producer_key) or _signers.setdefault(
        settings.producer_key, signer_from(settings.producer, settings.producer_key, settings.producer_key_id)
    )
    return [(name, value.encode()) for name, value in signer.headers(line).items()]


_signers: dict = {}


async def produce_all(settings: Settings, lines: list[bytes], partitions: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20)
    await producer.start()
    try:
        pending = []
        for line in lines:
            key, partition = routing(line, partitions)
            headers = signed(settings, line)
            pending.append(
                await producer.send(settings.events_topic, line, key=key, partition=partition, headers=headers)
            )
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def answers(port: int) -> bool:
    """Whether a serve's /metrics answers: it has started."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ServeFigures:
    """serve's own account of a stretch: its CPU time, and its batches from its /metrics."""

    cpu: float
    batches: float
    batch_seconds: float
    consumed: float
    values: dict[str, float]

    @classmethod
    def read(cls, pid: int, port: int) -> ServeFigures:
        cpu = cpu_seconds(pid)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        values = {
            name: float(value)
            for name, value in (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
        }
        return cls(
            cpu,
            values["medledger_batch_seconds_count"],
            values["medledger_batch_seconds_sum"],
            values["medledger_events_consumed_total"],
            values,
        )

    @classmethod
    def total(cls, figures: list[ServeFigures]) -> ServeFigures:
        """The figures of several serves added up."""
        values: dict[str, float] = {}
        for f in figures:
            for name, value in f.values.items():
                values[name] = values.get(name, 0.0) + value
        return cls(
            *(sum(getattr(f, name) for f in figures) for name in ("cpu", "batches", "batch_seconds", "consumed")),
            values,
        )

    def since(self, before: ServeFigures) -> str:
        batches = self.batches - before.batches
        events = self.consumed - before.consumed
        cpu = self.cpu - before.cpu
        return (
            f"serve while measuring: {batches:.0f} batches of {events / max(batches, 1):.1f} events on average, "
            f"{(self.batch_seconds - before.batch_seconds) / max(batches, 1) * 1000:.1f} ms each from taking to "
            f"commit; CPU {cpu:.1f} s = {cpu / max(events, 1) * 1000:.2f} ms an event"
        )


def count(database_url: str, query: str) -> int:
    import asyncpg

    async def run():
        connection = await asyncpg.connect(database_url)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    return asyncio.run(run())


def latency_visits(lines: list[bytes], wanted: int, prefix: str = "lat") -> list[dict]:
    """Visits of already enrolled members, dated in the newest year of the stream, under fresh ids."""
    visits = [orjson.loads(line) for line in lines if b'"visit.submitted"' in line]
    newest = max(v["occurred_at"][:4] for v in visits)
    recent = [v for v in visits if v["occurred_at"][:4] == newest] or visits
    out = []
    for n in range(wanted):
        visit = dict(recent[n % len(recent)])
        visit["event_id"] = f"{prefix}-{n:07d}"
        visit["visit_id"] = f"{prefix.upper()}-{n:07d}"
        out.append(visit)
    return out


@dataclass(frozen=True)
class Timed:
    """One visit: when it was sent (seconds into the sending), its latency, and of that the time from the relay
    putting its settlement in a batch for the broker (the output record's timestamp) to its arrival here."""

    sent: float
    latency: float
    on_topic: float


async def measure_latency(settings: Settings, visits: list[dict], rate: int, partitions: int) -> list[Timed]:
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    on_topic: dict[str, float] = {}
    wanted = {ids.settlement_id(v["region"], v["event_id"]): v["event_id"] for v in visits}
    consumer = AIOKafkaConsumer(
        settings.settlements_topic,
        settings.rejections_topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    await consumer.seek_to_end()

    async def receive():
        while len(arrived) < len(visits):
            batch = await consumer.getmany(timeout_ms=200)
            now, wall = time.perf_counter(), time.time()
            for records in batch.values():
                for record in records:
                    value = orjson.loads(record.value)
                    event_id = wanted.get(value.get("settlement_id")) or value.get("rejected")
                    if event_id in sent and event_id not in arrived:
                        arrived[event_id] = now
                        on_topic[event_id] = max(wall - record.timestamp / 1000, 0.0)

    receiver = asyncio.create_task(receive())
    # Kafka's own producer has lingered 5 ms by default since 4.0 (aiokafka's default is still 0): a record is sent
    # with those that follow within 5 ms, rather than in a request of its own. The 5 ms count in the latency.
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        for n, visit in enumerate(visits):
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            line = orjson.dumps(visit)
            key, partition = routing(line, partitions)
            sent[visit["event_id"]] = time.perf_counter()
            await producer.send(
                settings.events_topic, line, key=key, partition=partition, headers=signed(settings, line)
            )
        await asyncio.wait_for(receiver, timeout=120)
    finally:
        await producer.stop()
        await consumer.stop()
    return [Timed(sent[e] - started, arrived[e] - sent[e], on_topic[e]) for e in arrived]


WINDOW = 5


def windows(timeline: list[Timed]) -> list[str]:
    """p50/p99 of each stretch of sending: a queue that builds up shows as rising figures, a stall as one bad
    stretch."""
    groups: dict[int, list[float]] = {}
    for timed in timeline:
        groups.setdefault(int(timed.sent // WINDOW), []).append(timed.latency)
    return [
        f"{n * WINDOW}-{(n + 1) * WINDOW}: {percentile(sorted(group), 0.5) * 1000:.0f}/"
        f"{percentile(sorted(group), 0.99) * 1000:.0f} ms"
        for n, group in sorted(groups.items())
    ]


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


STAGES = ("fetched", "settled", "landed", "committed", "relayed", "published", "collected")


def stages(before: dict[str, float], after: dict[str, float], timeline: list[Timed]) -> list[str]:
    """Where the time went while measuring, stage by stage (serve's `medledger_stage_seconds`, per batch: mean and
    the upper bound of the bucket holding the 99th percentile), then the output topic as the visits saw it."""

    def delta(name: str, stage: str) -> float:
        key = f'medledger_stage_seconds_{name}{{stage="{stage}"}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    out = []
    for stage in STAGES:
        count = delta("count", stage)
        if not count:
            out.append(f"{stage} none")
            continue
        buckets = sorted(
            (float(key.split('le="', 1)[1].split('"', 1)[0]), after[key] - before.get(key, 0.0))
            for key in after
            if key.startswith("medledger_stage_seconds_bucket{") and f'stage="{stage}"' in key
        )
        p99 = next((bound for bound, n in buckets if n >= 0.99 * count), float("inf"))
        out.append(f"{stage} {delta('sum', stage) / count * 1000:.1f} ms (p99 ≤ {p99 * 1000:g} ms, {count:.0f}×)")
    topic = sorted(timed.on_topic for timed in timeline)
    out.append(
        f"relay's send → here p50 {percentile(topic, 0.5) * 1000:.1f} ms, p99 {percentile(topic, 0.99) * 1000:.1f} ms"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=230_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=30, help="seconds at --rate before measuring")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--serves",
        type=int,
        default=1,
        help="serve processes in one consumer group, each given its own partitions by the broker",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also print where the latency went, stage by stage (serve's medledger_stage_seconds)",
    )
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="medledger-kafka-bench-")
    # Registered before the embedded server's own exit handler, so it runs after the server has stopped.
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    env = dict(os.environ)
    broker_env = None
    if "KAFKA_BOOTSTRAP_SERVERS" not in env:
        broker_env = {
            **env,
            "MEDLEDGER_KAFKA_DIR": str(Path(work) / "kafka"),
            "MEDLEDGER_KAFKA_PORT": str(free_port()),
        }
        bootstrap = subprocess.run(
            [str(ROOT / "scripts/kafka/run"), "start"], env=broker_env, capture_output=True, text=True, check=True
        ).stdout.strip()
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    if "DATABASE_URL" not in env:
        env["MEDLEDGER_DATA_DIR"] = str(Path(work) / "data")
    env.update(MEDLEDGER_BATCH_SIZE=str(args.batch_size), MEDLEDGER_LOG_LEVEL="WARNING")
    if "MEDLEDGER_PRODUCERS" not in env:  # a key set of the run's own: the ledger's, and a producer's
        keys = Path(work) / "keys"
        subprocess.run([sys.executable, "-m", "consumers.cli", "keys", "init", str(keys)], check=True, cwd=ROOT)
        env.update(
            MEDLEDGER_PRODUCERS=str(keys / "producers.toml"),
            MEDLEDGER_PRODUCER="demo",
            MEDLEDGER_PRODUCER_KEY=str(keys / "demo.pem"),
            MEDLEDGER_LEDGER_KEY=str(keys / "ledger.pem"),
        )
    settings = Settings.from_env(env)
    serves: list[tuple[subprocess.Popen, int]] = []  # each serve and its metrics port
    try:
        # This process holds the embedded server for the whole run; serve joins it (and DATABASE_URL wins).
        os.environ.update(env)
        from ledger.db.migrate import prepare
        from ledger.db.server import dsn, locate

        db = locate()
        prepare(db)
        database_url = dsn(db.owner_url)

        lines = generate(args.events, args.members)
        visits = sum(1 for line in lines if b'"visit.submitted"' in line)
        asyncio.run(ensure_topics(settings, args.partitions))
        asyncio.run(produce_all(settings, lines, args.partitions))
        print(f"produced {len(lines)} events ({visits} visits), {args.members} members, {args.partitions} partitions")

        started = time.perf_counter()
        for n in range(args.serves):
            port = free_port()
            # Instances of one group need an id each: an instance id used twice at once is fenced by the broker.
            own = {"MEDLEDGER_INSTANCE": f"bench-{n}", "MEDLEDGER_METRICS_PORT": str(port)}
            serve = subprocess.Popen(
                [sys.executable, "-m", "consumers.cli", "serve", "--parameters", str(PARAMETERS)]
                + ["--partitions", str(args.partitions)],  # serve routes with the topic's count, or does not start
                env=env | own,
                cwd=ROOT,
                stderr=open(Path(work) / f"serve-{n}.log", "wb"),
            )
            serves.append((serve, port))
        done_query = (
            f"SELECT (SELECT count(*) FROM ledger_events WHERE event_type <> '{ADOPTED}') = $EVENTS AND "
            "(SELECT max(position) FROM outbox) = (SELECT max(position) FROM outbox_relay)"
        ).replace("$EVENTS", str(len(lines)))
        serving: dict[int, float] = {}  # serve -> its CPU time when it first answered on /metrics (started)
        while not count(database_url, done_query):
            for n, (serve, port) in enumerate(serves):
                if serve.poll() is not None:
                    log = (Path(work) / f"serve-{n}.log").read_text(errors="replace")[-3000:]
                    raise SystemExit(f"serve exited with {serve.returncode}:\n{log}")
                if n not in serving and answers(port):
                    serving[n] = cpu_seconds(serve.pid)
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(serve.pid) - serving.get(n, 0.0) for n, (serve, _) in enumerate(serves))
        print(
            f"throughput: {len(lines)} events in {elapsed:.1f} s = {len(lines) / elapsed:,.0f} events/s "
            f"({visits / elapsed:,.0f} visits/s), from the start of {len(serves)} serve(s) to the last output record "
            f"on the topics; serve CPU once started {cpu:.1f} s = {cpu / len(lines) * 1000:.3f} ms an event"
        )

        if args.warmup:
            warm = latency_visits(lines, args.rate * args.warmup, prefix="warm")
            asyncio.run(measure_latency(settings, warm, args.rate, args.partitions))
            print(f"warm-up: {len(warm)} visits at {args.rate} events/s, not measured")
        lat = latency_visits(lines, args.rate * args.seconds)
        pgdata = db.embedded_dir / "pgdata" if "DATABASE_URL" not in env and db.embedded_dir is not None else None
        server_before = server_cpu(pgdata)
        before = ServeFigures.total([ServeFigures.read(serve.pid, port) for serve, port in serves])
        timeline = asyncio.run(measure_latency(settings, lat, args.rate, args.partitions))
        latencies = sorted(timed.latency for timed in timeline)
        print(
            f"latency at {args.rate} events/s for {args.seconds} s: {len(latencies)} of {len(lat)} arrived; "
            f"p50 {percentile(latencies, 0.50) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms (send → settlement or rejection on the output topic)"
        )
        print(f"by {WINDOW} s of sending: " + "; ".join(windows(timeline)))
        after = ServeFigures.total([ServeFigures.read(serve.pid, port) for serve, port in serves])
        print(after.since(before))
        server_after = server_cpu(pgdata)
        if server_before is not None and server_after is not None:
            used = server_after - server_before
            consumed = max(after.consumed - before.consumed, 1)
            print(f"PostgreSQL while measuring: CPU {used:.1f} s = {used / consumed * 1000:.2f} ms an event")
        if args.stages:
            print("stages a batch went through: " + "; ".join(stages(before.values, after.values, timeline)))
    finally:
        peaks = {}
        for n, (serve, _) in enumerate(serves):
            if serve.returncode is None:
                with contextlib.suppress(OSError):
                    peaks[n] = peak_rss(serve.pid)  # its own: wait4's counts this process's image it was forked from
                serve.terminate()
        for n, (serve, _) in enumerate(serves):
            if serve.returncode is None:
                _, status, usage = os.wait4(serve.pid, 0)
                peak = f"{peaks[n] / 1024:.0f} MB" if n in peaks else "unknown"
                print(
                    f"serve {n}: peak RSS {peak}, CPU {usage.ru_utime + usage.ru_stime:.1f} "
                    f"s (both phases), exit {os.waitstatus_to_exitcode(status)}"
                )
        if broker_env is not None:
            subprocess.run([str(ROOT / "scripts/kafka/run"), "stop"], env=broker_env, check=False)


if __name__ == "__main__":
    main()
