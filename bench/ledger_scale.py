"""Ingest a generated ledger into an empty database, then `replay --verify` it; print throughput and peak memory.

    python bench/ledger_scale.py --events 1000000 --members 100000

Uses a fresh embedded PostgreSQL in a temporary directory (or DATABASE_URL, which must point at an empty
database). Each step runs as its own `medledger` process so its peak memory is its own (with its workers').
The embedded server is held up by a process of its own for the whole run, so that each step's PostgreSQL CPU (its
postmaster and every backend and worker, read from /proc) is printed beside the command's: on a machine of few
cores the wall time is bound by both.
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


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], ()))
    return found


def _tree_pss(pid: int) -> int:
    """Proportional set size, in kB, of a process and all its descendants together (replay's workers, say):
    what they hold between them, each shared page counted once."""
    total = 0
    for member in _descendants(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total


HOLD = "import sys; from ledger.db.server import locate; locate(); print('up', flush=True); sys.stdin.read()"


def _server_cpu(postmaster: int | None) -> float:
    """CPU seconds of the server so far: the postmaster's own and its ended children's, and each live descendant's
    (a child's time is in exactly one of them: its own while it runs, the postmaster's once it has been reaped)."""
    if postmaster is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _descendants(postmaster):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if member == postmaster:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / ticks


def run(command: list[str], env: dict, stdout=subprocess.DEVNULL) -> tuple[float, float, float, int]:
    """(seconds, peak memory in MB, CPU seconds, exit code) of one child process with its own children. The
    memory is the highest sum of their proportional set sizes, sampled every 0.2 s: a peak RSS as the kernel
    keeps it is that of the largest process alone. The CPU time (PostgreSQL's is not in it) varies far less from
    run to run than the wall time on a shared machine."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=stdout)
    peak = 0
    while True:
        ended, status, usage = os.wait4(child.pid, os.WNOHANG)
        if ended:
            break
        peak = max(peak, _tree_pss(child.pid))
        time.sleep(0.2)
    cpu = usage.ru_utime + usage.ru_stime
    memory = max(peak, usage.ru_maxrss) / 1024
    return time.perf_counter() - started, memory, cpu, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1_000, help="events per ingest transaction")
    parser.add_argument("--replay-batch-size", type=int, default=2_000, help="events per replay batch")
    parser.add_argument("--workers", type=int, help="ingest processes, one or more regions each (default: cores)")
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
        holder, postmaster = None, None
        if "DATABASE_URL" not in env:
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD],
                env=env,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
            postmaster = int((Path(env["MEDLEDGER_DATA_DIR"]) / "pgdata" / "postmaster.pid").read_text().split()[0])
        try:
            _steps(args, env, events, count, postmaster)
        finally:
            if holder is not None:
                holder.communicate("")  # its stdin closed: the server stops with it


def _steps(args: argparse.Namespace, env: dict, events: Path, count: int, postmaster: int | None) -> None:
    served = "; PostgreSQL CPU {:.1f} s = {:.3f} ms an event"
    before = _server_cpu(postmaster)
    seconds, rss, cpu, code = run(
        MEDLEDGER
        + ["ingest", str(events), "--quiet", "--parameters", str(PARAMETERS), "--batch-size", str(args.batch_size)]
        + ([] if args.workers is None else ["--workers", str(args.workers)]),
        env,
    )
    after = _server_cpu(postmaster)
    server, before = after - before, after
    print(
        f"ingest: {count} events in {seconds:.1f} s = {count / seconds:,.0f} events/s, "
        f"peak memory {rss:.0f} MB, CPU {cpu:.1f} s = {cpu / count * 1000:.3f} ms an event, exit {code}"
        + (served.format(server, server / count * 1000) if postmaster is not None else "")
    )
    seconds, rss, cpu, code = run(MEDLEDGER + ["replay", "--verify", "--batch-size", str(args.replay_batch_size)], env)
    server = _server_cpu(postmaster) - before
    print(
        f"replay --verify: {seconds:.1f} s, peak memory {rss:.0f} MB (workers included), CPU {cpu:.1f} s, "
        f"exit {code} ({'verified' if code == 0 else 'NOT verified'})"
        + (served.format(server, server / count * 1000) if postmaster is not None else "")
    )


if __name__ == "__main__":
    main()
