"""What a small batch costs `serve`, and PostgreSQL, in CPU: the fixed toll of each batch at a steady trickle.

    python bench/small_batches.py --batches 300 --size 8 --rounds 2

Batches of --size visits go through `serve`'s settler one after another, each committed before the next arrives
(as at a trickle of records), on the event loop `serve` runs on (`ledger.runtime.run`: uvloop's), on a fresh
embedded PostgreSQL (or DATABASE_URL, an empty database). Prints, a batch: this process's CPU (settling, the
statements, the driver; producers' signatures are not checked here) and the CPU of the server processes that ran
its statements, read from /proc (so the server must run on this machine).

Each round runs both ways the append transaction's statements can be planned, A B A B in fresh processes:
`generic` (as medledger does: planned once a connection) and `auto` (PostgreSQL's default: a statement's first five
executions planned with its values, later ones too while that looks cheaper), and the medians and ratios follow.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proc import cpu_of  # noqa: E402
from ledger import runtime  # noqa: E402

TOPIC = ("events", 0)


async def _measure(batches: int, size: int, members: int) -> tuple[float, float]:
    import asyncpg

    from consumers.claims import Claims
    from consumers.metrics import Metrics
    from consumers.settle import Settler
    from ledger.db.migrate import prepare
    from ledger.db.server import dsn, locate
    from ledger.intake import from_lines
    from ledger.service import LedgerService
    from tests import builders as b
    from tests.consumers.test_round_trips import Fetched, Record

    db = locate()
    prepare(db)
    b.fresh()
    names = [f"M{n}" for n in range(members)]
    offset = 0

    def visits(count: int) -> list[Record]:
        nonlocal offset
        out = []
        for _ in range(count):
            line = b.as_line(b.visit(names[offset % members], b.NANJING, on="2023-07-03"))
            out.append(Record(offset, line.encode()))
            offset += 1
        return out

    async def settled(settler: Settler) -> None:
        await settler(visits(size))
        while settler.in_flight is not None or settler._landing:
            await asyncio.sleep(0.001)

    async with LedgerService(db, batch_size=2_000) as service:
        await service.ingest_batch(list(from_lines(b.lines(*(b.enrolled(m, b.NANJING) for m in names)), "seed")))
        claims = Claims(service, "bench", lambda: Fetched())
        claims.held = await service.claim("bench", [TOPIC])
        settler = Settler(service, claims, Metrics())
        for _ in range(30):  # every pooled connection has prepared its statements
            await settled(settler)
        owner = await asyncpg.connect(dsn(db.owner_url))
        try:
            pids = [
                row[0]
                for row in await owner.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
            ]
            client, server = time.process_time(), cpu_of(pids)
            for _ in range(batches):
                await settled(settler)
            return (time.process_time() - client) / batches, (cpu_of(pids) - server) / batches
        finally:
            await owner.close()


def _one(args: argparse.Namespace) -> None:
    if args.plans == "auto":
        from ledger.db import recorder

        recorder.GENERIC_PLANS = ""
    client, server = runtime.run(_measure(args.batches, args.size, args.members))
    print(f"{client * 1000:.3f} {server * 1000:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--size", type=int, default=8, help="visits a batch")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--plans", choices=("generic", "auto"), help=argparse.SUPPRESS)  # one measurement
    args = parser.parse_args()
    if args.plans:
        _one(args)
        return
    figures: dict[str, list[tuple[float, float]]] = {"auto": [], "generic": []}
    for _ in range(args.rounds):
        for plans in ("auto", "generic"):
            env = dict(os.environ)
            if "DATABASE_URL" not in env:
                env["MEDLEDGER_DATA_DIR"] = tempfile.mkdtemp(prefix="medledger-small-batches-")
            out = subprocess.run(
                [sys.executable, __file__, "--plans", plans]
                + ["--batches", str(args.batches), "--size", str(args.size), "--members", str(args.members)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            client, server = float(out[-2]), float(out[-1])
            figures[plans].append((client, server))
            print(f"{plans:>7}: {args.size} visits a batch: serve {client:.2f}, PostgreSQL {server:.2f} ms CPU a batch")
    for n, what in enumerate(("serve", "PostgreSQL")):
        auto = statistics.median(f[n] for f in figures["auto"])
        generic = statistics.median(f[n] for f in figures["generic"])
        print(f"{what} CPU a batch, medians: auto {auto:.2f} ms, generic {generic:.2f} ms ({auto / generic:.2f}×)")


if __name__ == "__main__":
    main()
