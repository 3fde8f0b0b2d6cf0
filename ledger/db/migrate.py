"""Schema migrations (Alembic), run at start-up and by `medledger db upgrade`, always with the owner URL."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(owner_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    return config


def upgrade(owner_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Alembic's async environment runs its own event loop, so from inside a
    running loop this waits on a thread instead."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(owner_url), revision)
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    worker = threading.Thread(target=run, name="medledger-migrate")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def current(owner_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    del MigrationContext, create_engine  # the async environment reports through `command.current`
    captured: list[str] = []
    config = alembic_config(owner_url)
    config.print_stdout = lambda text, *args: captured.append(text % args if args else text)  # type: ignore[method-assign]
    command.current(config)
    return captured[-1].split()[0] if captured else None
