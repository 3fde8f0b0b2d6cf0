"""Where the console listens and how it reaches the database: as `medledger_console`, a role that reads the ledger
and writes only its access log and its verifications."""

from __future__ import annotations

import os

from ledger.db.server import CONSOLE_ROLE, Database, _asyncpg, with_user

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8091


def console_url(db: Database) -> str:
    """MEDLEDGER_CONSOLE_DATABASE_URL, or else the ledger's database as medledger_console (password from
    MEDLEDGER_CONSOLE_PASSWORD where the server wants one)."""
    configured = os.environ.get("MEDLEDGER_CONSOLE_DATABASE_URL")
    if configured:
        return _asyncpg(configured)
    if db.owner_url is None:
        raise ValueError("with only the service's own database URL, the console needs MEDLEDGER_CONSOLE_DATABASE_URL")
    return with_user(db.owner_url, CONSOLE_ROLE, os.environ.get("MEDLEDGER_CONSOLE_PASSWORD"))


def console_database(db: Database) -> Database:
    """The database as the console sees it: replays it starts connect as its own role too."""
    return Database(None, console_url(db), db.embedded_dir)
