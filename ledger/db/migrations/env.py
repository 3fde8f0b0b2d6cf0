"""Alembic environment: runs migrations over asyncpg with the owner URL given in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from ledger import runtime
from ledger.db.migrate import MIGRATION_LOCK
from ledger.db.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # set by `ledger.db.migrate.alembic_config`; there is no alembic.ini
        raise SystemExit("medledger migrations run with the owner URL: medledger db upgrade")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            # Several services may start at once: one migrates, the others wait and find nothing to do.
            await connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            await connection.commit()
            try:
                await connection.run_sync(_run)
                await connection.commit()
            finally:
                await connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("medledger migrations run online only: medledger db upgrade")
runtime.run(_main())
