"""Schema migrations (Alembic), run at start-up and by `medledger db upgrade`, always with the owner URL."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_ONE_AT_A_TIME = threading.Lock()  # Alembic's context is process-global


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
            with _ONE_AT_A_TIME:
                command.upgrade(alembic_config(owner_url), revision)
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    worker = threading.Thread(target=run, name="medledger-migrate")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]

