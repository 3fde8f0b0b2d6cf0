from __future__ import annotations

import pytest


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
