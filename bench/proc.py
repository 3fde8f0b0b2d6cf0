"""CPU time of processes of this machine, from Linux's /proc: what the benchmarks measure besides their own."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command's name (the third field first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def peak_rss(pid: int) -> int:
    """The highest resident set of a running process so far, in kB (`VmHWM`): its own, not its parent's image
    before it was exec'd. A child's `ru_maxrss` from `wait4` counts that too: a process started by a benchmark
    that holds a large stream in memory would show the benchmark's size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise OSError(f"process {pid} reports no VmHWM")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_of(pids: Iterable[int]) -> float:
    """User and system CPU time of the processes so far; one that has exited counts nothing."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def server_cpu(pgdata: Path | None) -> float | None:
    """CPU time of the embedded PostgreSQL so far: its postmaster's, the backends it has reaped (their time is
    added to the postmaster's children's), and those running. None for a server elsewhere (DATABASE_URL)."""
    if pgdata is None:
        return None
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        fields = _stat(postmaster)
    except (OSError, ValueError, IndexError):
        return None
    ticks = sum(int(fields[n]) for n in (11, 12, 13, 14))  # its own and its reaped children's
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == postmaster:
                ticks += int(child[11]) + int(child[12])
    return ticks / TICK
