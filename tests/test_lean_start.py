"""`medledger settle` reads a file and prints settlements: it loads no database, broker or web library, whose imports
cost its process more CPU time than many thousand events."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.generate import generate

# What the commands that use a database, the broker or HTTP load, and settle has no use for.
HEAVY = ("sqlalchemy", "alembic", "asyncpg", "faststream", "aiokafka", "fastapi", "starlette", "uvicorn", "anyio")

_RUN = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["medledger", *sys.argv[1:]]
from consumers.cli import main
main()
"""


def test_settle_loads_no_database_broker_or_web_library(tmp_path):
    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(event, default=str) + "\n" for event in generate(400, seed=3)))
    env = {**os.environ, "MEDLEDGER_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", _RUN, "settle", str(stream), "--workers", "1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert '"settlement_id"' in done.stdout  # it settled
    loaded = {name.split(".")[0] for name in json.loads(done.stderr.strip().splitlines()[-1])}
    assert "ledger" in loaded and "msgspec" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_a_movement_row_names_the_movement_tables_columns_in_their_order():
    from ledger.batch import MOVEMENT_ROW
    from ledger.db.tables import ledger_movements

    assert MOVEMENT_ROW == tuple(column.name for column in ledger_movements.columns)
