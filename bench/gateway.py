"""The national interface's latency as a HIS sees it: HTTP to `medledger gateway`, through the broker and
`medledger serve` into the ledger and back.

    python bench/gateway.py --presettle-rate 200 --settle-rate 100 --seconds 20

1. Members are enrolled through the event topic and visits registered through the gateway (1101, 2201, 2203,
   2204), none of it measured.
2. 2206 (pre-settlement) at --presettle-rate requests per second for --seconds, after --warmup seconds not
   measured: each request's time from sending to its answer. Prints p50 / p99 / max and the answers that were not
   infcode 0.
3. 2207 (settlement) at --settle-rate for --seconds, each a visit of its own: the visit goes to the event topic,
   serve settles it, the gateway hears the commit and answers. Same figures.

Requests are sent on a fixed schedule whatever the answers (an open loop), so a slow answer cannot hold the next
request back and hide its own delay. Uses KAFKA_BOOTSTRAP_SERVERS or starts a broker with scripts/kafka/run in a
temporary directory, and a fresh embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kafka_pipeline import count, free_port, percentile, produce_all  # noqa: E402
from bench.proc import cpu_seconds  # noqa: E402
from consumers.settings import Settings  # noqa: E402
from consumers.topics import ensure_topics  # noqa: E402
from gateway.signature import sign  # noqa: E402

PATH = "/fsi/api/rsfComIfsService/callService"
REGION = "320100"
HOSPITAL = "H32010200011"
TOKEN = "bench-token-0123456789abcdef"


def envelope(infno: str, given: dict, msgid: str | None = None) -> dict:
    return {
        "infno": infno,
        "msgid": msgid or uuid.uuid4().hex,
        "insuplc_admdvs": REGION,
        "mdtrtarea_admvs": REGION,
        "inf_time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "fixmedins_code": HOSPITAL,
        "input": given,
    }


async def call(client: httpx.AsyncClient, infno: str, given: dict) -> dict:
    stamp, nonce = str(int(time.time())), uuid.uuid4().hex
    headers = {
        "x-tif-paasid": HOSPITAL,
        "x-tif-timestamp": stamp,
        "x-tif-nonce": nonce,
        "x-tif-signature": sign(stamp, TOKEN, nonce),
        "content-type": "application/json",
    }
    response = await client.post(PATH, content=json.dumps(envelope(infno, given)), headers=headers)
    return response.json()


def enrolments(members: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "event_id": f"bench-enrol-{n}",
                "event_type": "member.enrolled",
                "schema_version": 1,
                "occurred_at": "2023-01-01T09:00:00+08:00",
                "region": REGION,
                "member_id": f"BENCH{n:08d}",
                "insurance_type": "employee",
                "person_type": "in_service",
                "birth_date": "1980-05-17",
                "effective_date": "2023-01-01",
                "contribution_base": "6500.00",
            }
        ).encode()
        for n in range(members)
    ]


async def register(client: httpx.AsyncClient, member: str, day: int) -> dict:
    """A registered visit with its fee details; the 2206 / 2207 input that settles it."""
    when = f"2023-{3 + day // 28:02d}-{1 + day % 28:02d} 09:00:00"
    answer = await call(client, "2201", {"data": {"psn_no": member, "insutype": "310", "begntime": when}})
    assert answer["infcode"] == 0, answer
    mdtrt_id = answer["output"]["data"]["mdtrt_id"]
    info = {"mdtrt_id": mdtrt_id, "psn_no": member, "med_type": "11"}
    assert (await call(client, "2203", {"mdtrtinfo": info}))["infcode"] == 0
    detail = {
        "feedetl_sn": "1",
        "mdtrt_id": mdtrt_id,
        "psn_no": member,
        "chrg_bchno": "1",
        "med_list_codg": "FA0101",
        "cnt": "1",
        "pric": "120.00",
        "det_item_fee_sumamt": "120.00",
    }
    assert (await call(client, "2204", {"feedetail": [detail]}))["infcode"] == 0
    given = {"psn_no": member, "mdtrt_id": mdtrt_id, "med_type": "11", "medfee_sumamt": "120.00"}
    return {"data": {**given, "acct_used_flag": "0", "insutype": "310"}}


async def register_all(client: httpx.AsyncClient, members: int, visits: int) -> list[dict]:
    registered: list[dict] = []
    for start in range(0, visits, 50):
        chunk = range(start, min(visits, start + 50))
        registered += await asyncio.gather(*(register(client, f"BENCH{n % members:08d}", n // members) for n in chunk))
    return registered


async def open_loop(client: httpx.AsyncClient, infno: str, inputs: list[dict], rate: int) -> tuple[list, int]:
    """Each of `inputs` sent at its time on a `rate` per second schedule; (latencies, answers not infcode 0)."""
    latencies: list[float] = []
    failed = 0

    async def one(given: dict) -> None:
        nonlocal failed
        sent = time.perf_counter()
        try:
            answer = await call(client, infno, given)
        except httpx.HTTPError:  # not answered within the client's timeout: counted, with the time it waited
            answer = {"infcode": None}
        latencies.append(time.perf_counter() - sent)
        if answer["infcode"] != 0:
            failed += 1

    started = time.perf_counter()
    tasks = []
    for index, given in enumerate(inputs):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(given)))
    await asyncio.gather(*tasks)
    return sorted(latencies), failed


def report(label: str, rate: int, latencies: list[float], failed: int, target_ms: float, cpu: dict) -> None:
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    print(
        f"{label} at {rate}/s: {len(latencies)} sent, {failed} not answered infcode 0; "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms (target p99 ≤ {target_ms:g} ms: {'met' if p99 <= target_ms else 'NOT met'})"
    )
    print(
        "  CPU per request: "
        + ", ".join(f"{name} {seconds / len(latencies) * 1000:.2f} ms" for name, seconds in cpu.items())
    )


async def timed(pids: dict[str, int], work) -> tuple:
    """`work`'s result, and the CPU seconds each process of `pids` used meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = await work
    return result, {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}


async def measure(url: str, args, pids: dict[str, int]) -> None:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        presettle_pool = await register_all(client, args.members, args.members)
        settle_count = args.settle_rate * (args.seconds + args.warmup)
        settle_inputs = await register_all(client, args.members, settle_count + args.members)
        settle_inputs = settle_inputs[args.members :]
        print(f"registered {len(presettle_pool) + len(settle_inputs)} visits of {args.members} members")

        def cycle(n: int) -> list[dict]:
            return [presettle_pool[i % len(presettle_pool)] for i in range(n)]

        await open_loop(client, "2206", cycle(args.presettle_rate * args.warmup), args.presettle_rate)
        (latencies, failed), cpu = await timed(
            pids, open_loop(client, "2206", cycle(args.presettle_rate * args.seconds), args.presettle_rate)
        )
        report("2206 pre-settlement", args.presettle_rate, latencies, failed, 50, cpu)
        warm = args.settle_rate * args.warmup
        await open_loop(client, "2207", settle_inputs[:warm], args.settle_rate)
        (latencies, failed), cpu = await timed(pids, open_loop(client, "2207", settle_inputs[warm:], args.settle_rate))
        report("2207 settlement through the broker", args.settle_rate, latencies, failed, 150, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presettle-rate", type=int, default=200)
    parser.add_argument("--settle-rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10, help="seconds at each rate before measuring")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medledger-gateway-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    env = dict(os.environ)
    broker_env = None
    if "KAFKA_BOOTSTRAP_SERVERS" not in env:
        broker_env = {**env, "MEDLEDGER_KAFKA_DIR": str(work / "kafka"), "MEDLEDGER_KAFKA_PORT": str(free_port())}
        env["KAFKA_BOOTSTRAP_SERVERS"] = subprocess.run(
            [str(ROOT / "scripts/kafka/run"), "start"], env=broker_env, capture_output=True, text=True, check=True
        ).stdout.strip()
    if "DATABASE_URL" not in env:
        env["MEDLEDGER_DATA_DIR"] = str(work / "data")
    keys = work / "keys.toml"
    keys.write_text(f'[facilities."{HOSPITAL}"]\ntoken = "{TOKEN}"\n')
    port = free_port()
    env.update(
        MEDLEDGER_METRICS_PORT="",
        MEDLEDGER_LOG_LEVEL="WARNING",
        MEDLEDGER_GATEWAY_KEYS=str(keys),
        MEDLEDGER_GATEWAY_REFERENCE=str(ROOT / "examples/national"),
        MEDLEDGER_GATEWAY_PORT=str(port),
    )
    if "MEDLEDGER_PRODUCERS" not in env:  # a key set of the run's own: the ledger's, the gateway's, a producer's
        made = work / "signing"
        subprocess.run([sys.executable, "-m", "consumers.cli", "keys", "init", str(made)], check=True, cwd=ROOT)
        env.update(
            MEDLEDGER_PRODUCERS=str(made / "producers.toml"),
            MEDLEDGER_PRODUCER="demo",  # the enrolments this script produces
            MEDLEDGER_PRODUCER_KEY=str(made / "demo.pem"),
            MEDLEDGER_LEDGER_KEY=str(made / "ledger.pem"),
        )
        as_gateway = {"MEDLEDGER_PRODUCER": "gateway", "MEDLEDGER_PRODUCER_KEY": str(made / "gateway.pem")}
    else:
        as_gateway = {}
    settings = Settings.from_env(env)
    processes: list[subprocess.Popen] = []
    try:
        os.environ.update(env)
        from ledger.db.migrate import prepare
        from ledger.db.server import dsn, locate

        db = locate()
        prepare(db)
        database_url = dsn(db.owner_url)
        asyncio.run(ensure_topics(settings, args.partitions))
        asyncio.run(produce_all(settings, enrolments(args.members), args.partitions))
        for command in ("serve", "gateway"):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "consumers.cli", command],
                    env=env | (as_gateway if command == "gateway" else {}),
                    cwd=ROOT,
                    stderr=open(work / f"{command}.log", "wb"),
                )
            )
        deadline = time.monotonic() + 120
        while count(database_url, "SELECT count(*) FROM member_state") < args.members:
            assert time.monotonic() < deadline, (work / "serve.log").read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(f"{url}/health").raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (work / "gateway.log").read_text(errors="replace")[-3000:]
                time.sleep(0.2)
        pids = {"gateway": processes[1].pid, "serve": processes[0].pid}
        print(f"machine load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        asyncio.run(measure(url, args, pids))
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
                process.wait(60)
        if broker_env is not None:
            subprocess.run([str(ROOT / "scripts/kafka/run"), "stop"], env=broker_env, check=False)


if __name__ == "__main__":
    main()
