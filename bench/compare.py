"""Compare this working tree with a release, side by side, on the same generated stream.

    python bench/compare.py                      # settle, against 7e81e4a, 120k events, 3 rounds
    python bench/compare.py --commit abc123 --rounds 5 --events 50000 --ingest --replay
    python bench/compare.py --commit abc123 --events 100000 --members 10000 --ingest --ingest-workers 1 --parameters

The release is checked out in a git worktree under /tmp (removed at the end) and both run with this python, one
after the other (A B A B ...), so that a machine busy with something else slows both alike. Each run is its own
process; its CPU time is the user and system time of it and its children (rusage). For `settle` the working tree
also runs with `--workers 2`. `--ingest` appends the stream to a fresh embedded PostgreSQL of each side's own
(a data directory under /tmp) and `--replay` then runs `replay --verify` on it: both need PostgreSQL's binaries.

Prints every run, then the medians of wall and CPU time, events a second, CPU microseconds an event, and the
ratios release / working tree. Exits non-zero when settle's output differs between the two in any byte.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = ROOT / "examples" / "params" / "150000-illustrative.toml"
RUN = "import sys; sys.argv = ['medledger', *sys.argv[1:]]; from consumers.cli import main; main()"


@dataclass
class Timed:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    digests: set[str] = field(default_factory=set)


def run(code: Path, args: list[str], env: dict[str, str], output: Path | None) -> tuple[float, float, str | None]:
    """(wall seconds, CPU seconds of the process and its children, sha256 of its stdout or None)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(output if output is not None else os.devnull, "wb") as out:
        done = subprocess.run(
            [sys.executable, "-c", RUN, *args],
            stdout=out,
            stderr=subprocess.PIPE,
            env={**env, "PYTHONPATH": str(code)},
            cwd=code,
            check=False,
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} in {code} failed: {done.stderr.decode(errors='replace')[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    digest = None
    if output is not None:
        digest = hashlib.sha256(output.read_bytes()).hexdigest()
        output.unlink()
    return wall, cpu, digest


def has_workers(code: Path, env: dict[str, str]) -> bool:
    """Whether `settle` of the tree at `code` takes --workers (releases before it settled in one process)."""
    done = subprocess.run(
        [sys.executable, "-c", RUN, "settle", "--help"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(code), "COLUMNS": "200"},
        cwd=code,
        check=False,
    )
    return "--workers" in done.stdout


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="7e81e4a", help="the release to compare with (A)")
    parser.add_argument("--events", type=int, default=120_000, help="events in the generated stream")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--members", type=int, help="members of the generated stream (default: the generator's)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternating")
    parser.add_argument("--workers", type=int, default=2, help="workers of the working tree's parallel settle")
    parser.add_argument("--parameters", action="store_true", help="settle with the example parameter file")
    parser.add_argument("--ingest", action="store_true", help="also ingest into a fresh embedded PostgreSQL")
    parser.add_argument(
        "--ingest-workers",
        type=int,
        help="ingest's --workers on both sides (default: ingest's own); 1 keeps all of it in the process measured",
    )
    parser.add_argument("--replay", action="store_true", help="also replay --verify what was ingested")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="medledger-compare-"))
    release = scratch / "release"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "DATABASE_URL")}
    env["MEDLEDGER_DATA_DIR"] = str(scratch / "unused-data")  # nothing here may touch the user's data directory
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(release), args.commit],
        check=True,
        capture_output=True,
    )
    try:
        stream = scratch / "stream.jsonl"
        with open(stream, "wb") as out:
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "generate.py"),
                    "--events",
                    str(args.events),
                    "--seed",
                    str(args.seed),
                    *([] if args.members is None else ["--members", str(args.members)]),
                ],
                stdout=out,
                check=True,
            )
        events = sum(1 for line in open(stream, "rb") if line.strip())
        print(f"{events} events; A = {args.commit}, B = working tree {ROOT}; {args.rounds} rounds, A B alternating")
        extra = ["--parameters", str(PARAMETERS)] if args.parameters else []
        # A release that settles on several workers by default is measured on one, as B's first line is: CPU an
        # event of one process against one process
        alone = ["--workers", "1"] if has_workers(release, env) else []
        print(f"A settle: settle {' '.join(['STREAM', *extra, *alone])}")
        sides = {
            "A settle": (release, ["settle", str(stream), *extra, *alone]),
            "B settle": (ROOT, ["settle", str(stream), *extra, "--workers", "1"]),
        }
        sides[f"B settle --workers {args.workers}"] = (
            ROOT,
            ["settle", str(stream), *extra, "--workers", str(args.workers)],
        )
        timed = {name: Timed() for name in sides}
        if args.ingest:
            for side in ("A", "B"):
                timed[f"{side} ingest"] = Timed()
                if args.replay:
                    timed[f"{side} replay --verify"] = Timed()
        for number in range(1, args.rounds + 1):
            for name, (code, command) in sides.items():
                wall, cpu, digest = run(code, command, env, scratch / "out.jsonl")
                timed[name].wall.append(wall)
                timed[name].cpu.append(cpu)
                timed[name].digests.add(digest)
                say(number, name, wall, cpu, events)
            if args.ingest:
                for side, code in (("A", release), ("B", ROOT)):
                    data = scratch / f"data-{side}-{number}"
                    side_env = {**env, "MEDLEDGER_DATA_DIR": str(data)}
                    run(code, ["db", "upgrade"], side_env, None)
                    workers = [] if args.ingest_workers is None else ["--workers", str(args.ingest_workers)]
                    wall, cpu, _ = run(code, ["ingest", str(stream), "--quiet", *extra, *workers], side_env, None)
                    timed[f"{side} ingest"].wall.append(wall)
                    timed[f"{side} ingest"].cpu.append(cpu)
                    say(number, f"{side} ingest", wall, cpu, events)
                    if args.replay:
                        wall, cpu, _ = run(code, ["replay", "--verify"], side_env, None)
                        timed[f"{side} replay --verify"].wall.append(wall)
                        timed[f"{side} replay --verify"].cpu.append(cpu)
                        say(number, f"{side} replay --verify", wall, cpu, events)
                    shutil.rmtree(data, ignore_errors=True)
        print("\nmedians")
        for name, times in timed.items():
            wall, cpu = median(times.wall), median(times.cpu)
            print(
                f"  {name:<28} wall {wall:7.2f} s  CPU {cpu:7.2f} s  {events / wall:9,.0f} events/s  "
                f"{cpu / events * 1e6:7.1f} µs CPU an event"
            )
        print("\nratios (A / B: how many times less B spends)")
        for name in timed:
            if not name.startswith("B "):
                continue
            base = "A " + name[2:].split(" --workers")[0]
            if base not in timed:
                continue
            a, b = timed[base], timed[name]
            print(
                f"  {name:<28} wall {median(a.wall) / median(b.wall):5.2f}x  CPU {median(a.cpu) / median(b.cpu):5.2f}x"
            )
        digests = {name: times.digests for name, times in timed.items() if "settle" in name}
        every = set().union(*digests.values())
        if len(every) != 1:
            print("\nsettle's output DIFFERS:", {name: sorted(d) for name, d in digests.items()})
            return 1
        print(f"\nsettle's output is byte-identical in every run (sha256 {every.pop()[:16]}...)")
        return 0
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(release)], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def say(number: int, name: str, wall: float, cpu: float, events: int) -> None:
    print(
        f"round {number}  {name:<28} wall {wall:7.2f} s  CPU {cpu:7.2f} s  {events / wall:9,.0f} events/s  "
        f"{cpu / events * 1e6:7.1f} µs CPU an event",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
