"""The embedded server stops when its last live user leaves, even after a user was killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# A medledger process using the embedded server until its input closes, or it is killed.
USER = """
import sys
from ledger.db.server import locate
locate()
print("attached", flush=True)
sys.stdin.read()
"""


def _user(data: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["MEDLEDGER_DATA_DIR"] = str(data)
    process = subprocess.Popen(
        [sys.executable, "-c", USER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "attached"
    return process


def _leave(process: subprocess.Popen) -> None:
    process.stdin.close()
    assert process.wait(timeout=120) == 0


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _attached(data: Path) -> list[int]:
    return json.loads((data / "pgdata" / ".handle_pids.json").read_text())


def _running(data: Path) -> bool:
    return (data / "pgdata" / "postmaster.pid").exists()


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "medledger"
    yield data
    if _running(data):  # whatever the test left: the next user to leave alone stops it
        (data / "pgdata" / ".handle_pids.json").write_text("[]")
        _leave(_user(data))


def test_a_user_killed_outright_is_forgotten_when_another_leaves_and_the_server_stops(data):
    killed, last = _user(data), _user(data)
    _kill(killed)
    assert killed.pid in _attached(data) and _running(data)
    _leave(last)
    assert _attached(data) == [] and not _running(data)


def test_a_user_killed_outright_is_forgotten_when_another_attaches(data):
    killed = _user(data)
    _kill(killed)
    assert _attached(data) == [killed.pid]
    user = _user(data)
    assert _attached(data) == [user.pid]
    _leave(user)
    assert not _running(data)
