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


_PART = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
from ledger.db.server import locate
from ledger.parallel_ingest import Part, ingest_part, shares
split = shares(sys.argv[1], 1)
part = Part(sys.argv[1], split.groups[0], 0, split.marks, "", None, 50, 30.0, 300.0, None)
stats = ingest_part(locate(), part, producers=None, signing=None)
print(stats.appended)
"""


def test_a_worker_of_ingest_loads_neither_the_schema_tools_nor_the_command_line(database, tmp_path):
    """Each of `ingest --workers`' processes holds what it imports: Alembic (with Mako and Pygments) and the command
    line (typer, rich) were some 16 MB of each, for a schema the command had checked and options it had read, and
    SQLAlchemy some 20 MB more, for a pool and the columns' types (`db.connect`, `db.columns`)."""
    from tests.ledger.helpers import example_lines

    events = tmp_path / "events.jsonl"
    events.write_text("".join(line + "\n" for line in example_lines("nanjing")), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _PART, str(events)],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": database.owner_url},
        check=True,
    )
    assert int(done.stdout.split()[-1]) > 0  # it ingested
    loaded = {name.split(".")[0] for name in json.loads(done.stderr.strip().splitlines()[-1])}
    assert "asyncpg" in loaded
    assert loaded.isdisjoint({"sqlalchemy", "alembic", "mako", "pygments", "typer", "rich", "click"}), sorted(loaded)


def test_the_script_a_spawned_worker_runs_first_loads_no_command_line():
    """A worker of `ingest --workers` or `replay --verify` is spawned: before its work it runs the `medledger` script
    its parent was started from, as `__mp_main__` (`multiprocessing.spawn`). The script imported the whole command
    line at its top (typer, rich, Pygments, every command's module), into every worker."""
    from pathlib import Path

    script = Path(sys.executable).with_name("medledger")
    assert script.exists(), "the project is installed with its console script"
    code = (
        "import json, runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(script)], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert "consumers" in loaded  # the script ran
    assert loaded.isdisjoint({"typer", "rich", "click", "pygments", "alembic", "ledger"}), sorted(loaded)
