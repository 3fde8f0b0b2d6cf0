"""Running a script of bench/ as a user does, for the tests of its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python bench/<script> <arguments>` from the project's root; it must exit 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done
