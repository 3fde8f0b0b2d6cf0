"""`medledger serve` as an operator starts it after an upgrade, on member states an earlier release wrote: it
stops with one line naming the rebuild and exit 2, and consumes nothing (docs/upgrading.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from consumers.settings import environment
from tests import builders as b
from tests.kafka.streams import publish, run
from tests.ledger.helpers import execute, fetch, ingest, plain

ROOT = Path(__file__).resolve().parents[2]


def test_serve_refuses_to_start_on_member_states_of_an_earlier_release(settings, database):
    b.fresh()
    ingest(database, [b.as_line(b.enrolled("NJ-A", b.NANJING, on="2022-12-01"))])
    execute(database, "UPDATE member_state SET state = state - 'contributions'", owner=True)
    before = fetch(database, "SELECT count(*) FROM ledger_events")[0][0]
    run(publish(settings, [b.as_line(b.contribution("NJ-A", b.NANJING, "2023-07", "9000.00"))]))
    env = {
        **os.environ,
        "DATABASE_URL": plain(database.owner_url),
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "MEDLEDGER_GROUP_ID": settings.group_id,
        "MEDLEDGER_EVENTS_TOPIC": settings.events_topic,
        "MEDLEDGER_SETTLEMENTS_TOPIC": settings.settlements_topic,
        "MEDLEDGER_REJECTIONS_TOPIC": settings.rejections_topic,
        "MEDLEDGER_METRICS_PORT": "",
        **environment(settings),
    }
    started = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 2, started.stderr[-2000:]
    assert started.stderr.strip().splitlines()[-1].startswith("medledger serve: 1 member_state row(s) were written")
    assert "Traceback" not in started.stderr and "medledger projections rebuild" in started.stderr
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == before
