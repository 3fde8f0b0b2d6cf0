"""bench/compare.py runs a release and the working tree alternately on one generated stream and checks that
settle prints the same bytes in both."""

from __future__ import annotations

import subprocess

from tests.benches import ROOT, bench


def test_compare_runs_both_sides_and_finds_settle_output_identical():
    done = bench("compare.py", "--commit", "HEAD", "--events", "400", "--rounds", "1")
    assert "round 1  A settle" in done.stdout and "round 1  B settle --workers 2" in done.stdout
    assert "ratios (A / B" in done.stdout
    # HEAD settles on the machine's cores by default: A is measured on one process, as B's first line is
    assert "A settle: settle STREAM --workers 1" in done.stdout
    assert "byte-identical in every run" in done.stdout
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True)
    assert "medledger-compare-" not in listed.stdout  # the release's worktree is removed at the end
