"""The README's first command, as a newcomer runs it, on a data directory of its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("region", ["nanjing", "inner-mongolia"])
def test_the_demo_settles_a_region_shows_a_statement_and_verifies(tmp_path, region):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MEDLEDGER_APP_DATABASE_URL")}
    env["MEDLEDGER_DATA_DIR"] = str(tmp_path / "data")
    env["COLUMNS"] = "160"
    done = subprocess.run(
        [str(ROOT / "scripts/demo"), region], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    assert '"settlement_id"' in done.stdout  # the settlement lines of the ingest
    assert "statement " in done.stdout and "accumulators" in done.stdout
    assert "verified" in done.stdout + done.stderr
