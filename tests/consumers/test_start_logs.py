"""What a healthy start logs: alembic's plugin lines are not shown at INFO, and FastStream's note about topic
creation (serve makes its topics itself) is DEBUG, shown only when that level is asked for."""

from __future__ import annotations

import subprocess
import sys

import orjson

LOAD_ALEMBIC = "from ledger.db import migrate; from alembic.runtime.environment import EnvironmentContext"
FASTSTREAM_NOTE = "Auto create topics is disabled. Make sure the topics exist."


def _stderr(level: str, code: str) -> list[dict]:
    script = f"from consumers import logs; logs.configure({level!r}); {code}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return [orjson.loads(line) for line in done.stderr.splitlines()]


def test_loading_alembic_logs_nothing_at_info():
    assert _stderr("INFO", LOAD_ALEMBIC) == []


def test_faststreams_topic_creation_note_is_debug_and_hidden_at_info():
    note = f"import logging; logging.getLogger('medledger.kafka').warning({FASTSTREAM_NOTE!r})"
    other = "; logging.getLogger('medledger.kafka').warning('a real warning')"
    at_info = _stderr("INFO", note + other)
    at_debug = _stderr("DEBUG", note)

    assert [(record["level"], record["message"]) for record in at_info] == [("warning", "a real warning")]
    assert [(record["level"], record["message"]) for record in at_debug] == [("debug", FASTSTREAM_NOTE)]


COORDINATOR_DEAD = "Marking the coordinator dead (node 1)for group medledger-1."


def test_a_coordinator_marked_dead_while_starting_is_info_and_a_warning_again_after_the_start():
    say = f"import logging; logging.getLogger('aiokafka.consumer.group_coordinator').warning({COORDINATOR_DEAD!r})"
    later = "; import time; logs.START_WINDOW = 0.0; logs.configure('INFO'); " + say.split("; ", 1)[1]

    assert _stderr("INFO", say) == []  # aiokafka is shown from WARNING: at INFO, not at all
    assert [(record["level"], record["message"]) for record in _stderr("INFO", say + later)] == [
        ("warning", COORDINATOR_DEAD)
    ]
