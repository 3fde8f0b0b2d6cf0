"""Ingest a generated ledger into an empty database, then `replay --verify` it; print throughput and peak RSS.

    python bench/ledger_scale.py --events 1000000 --members 100000

Uses a fresh embedded PostgreSQL in a temporary directory (or DATABASE_URL, which must point at an empty
database). Each step runs as its own `medledger` process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDLEDGER = [sys.executable, "-m", "ledger.cli"]
PARAMETERS = ROOT / "examples/params/150000-illustrative.toml"


def run(command: list[str], env: dict, stdout=subprocess.DEVNULL) -> tuple[float, float, float, int]:
    """(seconds, peak RSS in MB, CPU seconds, exit code) of one child process. Its CPU time (PostgreSQL's is not
    in it) varies far less from run to run than the wall time on a shared machine."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=stdout)
    _, status, usage = os.wait4(child.pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, usage.ru_maxrss / 1024, cpu, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2_500, help="events per ingest transaction")
    parser.add_argument("--replay-batch-size", type=int, default=5_000, help="events per replay batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as work:
        env = dict(os.environ)
        if "DATABASE_URL" not in env:
            env["MEDLEDGER_DATA_DIR"] = str(Path(work) / "data")
        events = Path(work) / "events.jsonl"
        with open(events, "wb") as out:
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench/generate.py"),
                    "--events",
                    str(args.events),
                    "--members",
                    str(args.members),
                ],
                stdout=out,
                check=True,
                cwd=ROOT,
            )
        count = sum(1 for _ in open(events, "rb"))
        print(f"generated {count} events for {args.members} members across four regions")

        # The schema, and the embedded server's settings, which take effect at its next start.
        subprocess.run(MEDLEDGER + ["db", "upgrade"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        seconds, rss, cpu, code = run(
            MEDLEDGER
            + ["ingest", str(events), "--quiet", "--parameters", str(PARAMETERS), "--batch-size", str(args.batch_size)],
            env,
        )
        print(
            f"ingest: {count} events in {seconds:.1f} s = {count / seconds:,.0f} events/s, "
            f"peak RSS {rss:.0f} MB, CPU {cpu:.1f} s = {cpu / count * 1000:.3f} ms an event, exit {code}"
        )
        seconds, rss, cpu, code = run(
            MEDLEDGER + ["replay", "--verify", "--batch-size", str(args.replay_batch_size)], env
        )
        print(
            f"replay --verify: {seconds:.1f} s, peak RSS {rss:.0f} MB, CPU {cpu:.1f} s, exit {code} "
            f"({'verified' if code == 0 else 'NOT verified'})"
        )


if __name__ == "__main__":
    main()
