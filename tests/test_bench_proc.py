"""bench/proc.py: what the benchmarks read of other processes from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.proc import peak_rss


def test_a_childs_peak_is_its_own_not_the_image_of_the_process_that_started_it():
    """`wait4`'s ru_maxrss of a child counts the parent's memory it was forked from (before exec); a benchmark
    that holds a large stream then reports its own size as the child's peak. VmHWM is the child's alone."""
    held = bytearray(300 * 1024 * 1024)  # touched: resident in this process
    for at in range(0, len(held), 4096):
        held[at] = 1
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        own = peak_rss(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
    _, _, usage = os.wait4(child.pid, 0)
    assert own < 100 * 1024, own  # kB: an interpreter that read nothing
    assert usage.ru_maxrss > 300 * 1024, usage.ru_maxrss  # the parent's 300 MB, counted as the child's
    del held
