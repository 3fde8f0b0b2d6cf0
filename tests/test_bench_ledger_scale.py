"""bench/ledger_scale.py ingests a generated ledger into a fresh embedded server and verifies it, printing each step's
CPU, the command's and PostgreSQL's, and leaves no server running."""

from __future__ import annotations

import os
import re
import subprocess

from tests.benches import bench


def test_it_prints_each_steps_cpu_and_postgresqls_and_stops_the_server():
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "MEDLEDGER_DATA_DIR")}
    done = bench("ledger_scale.py", "--events", "3000", "--members", "300", env=env)
    server = [float(seconds) for seconds in re.findall(r"PostgreSQL CPU ([0-9.]+) s", done.stdout)]
    assert len(server) == 2 and all(seconds > 0 for seconds in server), done.stdout  # ingest's, replay's
    assert "exit 0 (verified)" in done.stdout
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "medledger-bench-" not in running  # its server stopped with the process that held it
