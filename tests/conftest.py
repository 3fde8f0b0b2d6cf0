from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI explores the same examples on every run, so a result does not depend on luck; a developer's runs
# explore new ones (and hypothesis keeps what failed in .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    from tests.pg import TestServer

    server = TestServer(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture
def database(pg_server):
    """A fresh, migrated database on a real PostgreSQL server: (owner and service URLs)."""
    name, db = pg_server.fresh()
    yield db
    pg_server.drop(name)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """The real broker (tests/kafka/broker.py), one for the whole session: every directory's tests share it."""
    from tests.kafka.broker import TestBroker

    broker = TestBroker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture
def engine_saw(monkeypatch) -> list[type]:
    """The type of every event the engine is handed (a model's, or the fast decoder's Struct), in order."""
    from policies.engine import Engine

    seen: list[type] = []
    apply = Engine.apply

    def recording(self: Engine, event, seq: int) -> list:
        seen.append(type(event))
        return apply(self, event, seq)

    monkeypatch.setattr(Engine, "apply", recording)
    return seen
