"""`medledger console` as the compose stack starts it: given only its own role's URL."""

from __future__ import annotations

from typer.testing import CliRunner

from ledger.cli import app
from ledger.db.server import CONSOLE_ROLE, with_user
from tests.ledger.helpers import plain


def test_the_console_given_only_its_own_url_starts_on_it_and_looks_for_no_other_database(
    database, monkeypatch, tmp_path
):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda application, **options: started.update(options, app=application))
    for name in ("DATABASE_URL", "MEDLEDGER_APP_DATABASE_URL", "MEDLEDGER_CONSOLE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDLEDGER_DATA_DIR", str(tmp_path / "data"))  # where an embedded server would be made
    monkeypatch.setenv("MEDLEDGER_CONSOLE_DATABASE_URL", plain(with_user(database.owner_url, CONSOLE_ROLE, None)))
    result = CliRunner().invoke(app, ["console", "--port", "18091"])
    assert result.exit_code == 0, result.output
    assert started["port"] == 18091 and started["app"] is not None
    assert not (tmp_path / "data").exists()


def test_the_console_does_not_start_with_a_bound_of_held_members_it_cannot_read(monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda application, **options: None)
    result = CliRunner().invoke(app, ["console"], env={"MEDLEDGER_REPLAY_MEMBERS": "half"})
    assert result.exit_code == 2 and "MEDLEDGER_REPLAY_MEMBERS must be a whole number" in result.stderr
