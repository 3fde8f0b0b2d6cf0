"""Where the console listens and how it reaches the database: as `medledger_console`, a role that reads the ledger
and writes only its access log and its verifications."""

from __future__ import annotations

from collections.abc import Callable

from ledger.db.credentials import check_url, database_url, secret
from ledger.db.server import CONSOLE_ROLE, Database, _asyncpg, with_user

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8091


def console_ledger(ledger: Callable[[], Database]) -> Database:
    """The database the console starts from: its own role's URL alone when MEDLEDGER_CONSOLE_DATABASE_URL is given
    (no other database is looked for, and no embedded server started), else `ledger()`."""
    configured = database_url("MEDLEDGER_CONSOLE_DATABASE_URL", "MEDLEDGER_CONSOLE_PASSWORD")
    return Database(None, _asyncpg(configured)) if configured else ledger()


def console_url(db: Database) -> str:
    """MEDLEDGER_CONSOLE_DATABASE_URL (its password from MEDLEDGER_CONSOLE_PASSWORD where it names none), or else
    the ledger's database as medledger_console, with MEDLEDGER_CONSOLE_PASSWORD or the embedded server's password
    for it. A password that is a known default or too short is refused (`ledger.db.credentials`)."""
    configured = database_url("MEDLEDGER_CONSOLE_DATABASE_URL", "MEDLEDGER_CONSOLE_PASSWORD")
    if configured:
        return _asyncpg(configured)
    if db.owner_url is None:
        raise ValueError("with only the service's own database URL, the console needs MEDLEDGER_CONSOLE_DATABASE_URL")
    password = secret("MEDLEDGER_CONSOLE_PASSWORD") or db.passwords.get(CONSOLE_ROLE)
    url = with_user(db.owner_url, CONSOLE_ROLE, password)
    check_url(url, "MEDLEDGER_CONSOLE_PASSWORD")
    return url


def console_database(db: Database) -> Database:
    """The database as the console sees it: replays it starts connect as its own role too."""
    return Database(None, console_url(db), db.embedded_dir)
