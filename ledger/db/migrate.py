"""Schema migrations (Alembic), run at start-up and by `medledger db upgrade`, always with the owner URL."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import runtime
from .credentials import check_password, secret
from .partitions import partition_known
from .server import APP_ROLE, CONSOLE_ROLE, GATEWAY_ROLE, MAINTENANCE_ROLE, REPORTING_ROLE, Database, dsn

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision in MIGRATIONS/versions (a test holds it to Alembic's own head). A database already there is
# not handed to Alembic: importing and running it cost every medledger process some 0.45 s and 12 MB.
HEAD = "0016"
# Held by whoever changes the schema or the roles: several services may start at once against one database.
MIGRATION_LOCK = 7265010
_ONE_AT_A_TIME = threading.Lock()  # Alembic's context is process-global


def alembic_config(owner_url: str) -> Config:
    """Alembic is imported only where the schema is changed or checked: with Mako and Pygments, it holds some 12 MB
    in every process that imports it, each of `ingest --workers`' among them."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    return config


def _on_a_thread(work: Callable[[], None]) -> None:
    """Alembic's async environment and runtime.run start their own event loop, so they cannot run inside a
    caller's running loop; a short-lived thread has none."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    worker = threading.Thread(target=run, name="medledger-migrate")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


# The roles medledger connects as besides the owner, and where each one's password is given.
PASSWORDS = {
    APP_ROLE: "MEDLEDGER_APP_PASSWORD",
    REPORTING_ROLE: "MEDLEDGER_REPORTING_PASSWORD",
    CONSOLE_ROLE: "MEDLEDGER_CONSOLE_PASSWORD",
    MAINTENANCE_ROLE: "MEDLEDGER_MAINTENANCE_PASSWORD",
    GATEWAY_ROLE: "MEDLEDGER_GATEWAY_PASSWORD",
}


def upgrade(owner_url: str, revision: str = "head", passwords: dict[str, str] | None = None) -> dict[str, int]:
    """Bring the schema to `revision`; give medledger's roles the passwords set for them (in the environment, or
    `passwords`: the embedded server's). At the head, every region of the policy registry and every region whose
    rows wait in the DEFAULT partitions gets partitions of its own (`partitions`): those that got them, with the
    rows moved."""

    def migrate() -> None:
        from alembic import command

        with _ONE_AT_A_TIME:
            command.upgrade(alembic_config(owner_url), revision)

    given = {role: secret(variable) or (passwords or {}).get(role) for role, variable in PASSWORDS.items()}
    for role, password in given.items():
        if password:  # refused before anything changes
            check_password(password, role, PASSWORDS[role])
    if revision != "head" or schema_version(owner_url) != HEAD:
        _on_a_thread(migrate)
    for role, password in given.items():
        if password:
            _on_a_thread(functools.partial(_set_password_now, owner_url, role, password))
    made: dict[str, int] = {}
    if revision == "head":
        _on_a_thread(lambda: made.update(runtime.run(_partition(owner_url))))
    return made


async def _partition(owner_url: str) -> dict[str, int]:
    import asyncpg

    connection = await asyncpg.connect(dsn(owner_url))
    try:
        return await partition_known(connection, f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    finally:
        await connection.close()


def _set_password_now(owner_url: str, role: str, password: str) -> None:
    runtime.run(_set_password(owner_url, role, password))


async def _set_password(owner_url: str, role: str, password: str) -> None:
    """On a server that checks passwords, the roles need one; the owner sets it. Under the migrations' lock:
    PostgreSQL refuses one of two ALTER ROLEs of the same role at once ("tuple concurrently updated"), and serve
    and reporting starting together would each set both."""
    import asyncpg

    connection = await asyncpg.connect(dsn(owner_url))
    try:
        async with connection.transaction():
            await connection.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            statement = await connection.fetchval(
                "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text) FROM pg_roles WHERE rolname = $1",
                role,
                password,
            )
            if statement is not None:  # an earlier revision may not have made the role yet
                await connection.execute(statement)
    finally:
        await connection.close()


class SchemaNotCurrent(RuntimeError):
    pass


def prepare(db: Database) -> None:
    """At start-up: migrate with the owner's URL when there is one; a service given only its own role's URL
    (MEDLEDGER_APP_DATABASE_URL) never holds the owner's rights, and refuses to run on an old schema."""
    if db.owner_url:
        upgrade(db.owner_url, passwords=db.passwords)
        return
    current = schema_version(db.app_url)
    if current != HEAD:
        raise SchemaNotCurrent(
            f"the database schema is at {current or 'nothing'}, medledger needs {HEAD}: "
            f"run `medledger db upgrade` with the owner's DATABASE_URL"
        )


def schema_version(url: str) -> str | None:
    """The revision the database at `url` was migrated to (None: never)."""
    current: list[str | None] = []

    async def read() -> None:
        import asyncpg

        connection = await asyncpg.connect(dsn(url))
        try:
            current.append(await connection.fetchval("SELECT version_num FROM alembic_version"))
        except asyncpg.UndefinedTableError:
            current.append(None)
        finally:
            await connection.close()

    _on_a_thread(lambda: runtime.run(read()))
    return current[0]
