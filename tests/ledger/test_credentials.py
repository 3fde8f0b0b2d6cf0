"""No role is given or reached over the network with a known default or a weak password; every password may come
from a file (Docker secrets)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.db.credentials import UnsafeSecret, check_url, secret
from tests.ledger.helpers import fetch

STRONG = "Vq3-8fXk2pLm9RtZ"
runner = CliRunner()


@pytest.mark.parametrize(
    "password, reason",
    [
        ("change-me", "known default"),
        ("change-me-too", "known default"),
        ("medledger_app", "own name"),
        ("fifteen-chars-x", "shorter than 16"),
    ],
)
def test_a_start_with_a_weak_password_for_a_tcp_connection_is_refused_in_one_line(monkeypatch, password, reason):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://medledger_owner:{STRONG}@db.example:5432/medledger")
    monkeypatch.setenv("MEDLEDGER_APP_PASSWORD", password)
    result = runner.invoke(app, ["member", "show", "m"])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert "medledger_app" in line and reason in line and "MEDLEDGER_APP_PASSWORD" in line
    assert password not in line.replace("medledger_app (", "")  # the password itself is never printed


def test_the_owners_url_and_the_services_own_are_checked_too(monkeypatch):
    monkeypatch.delenv("MEDLEDGER_APP_PASSWORD", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://medledger_owner:medledger_owner@db.example:5432/medledger")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2 and "medledger_owner (DATABASE_URL) is the role's own name" in result.stderr
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("MEDLEDGER_APP_DATABASE_URL", "postgresql://medledger_app:change-me@db.example/medledger")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2 and "known default" in result.stderr


def test_a_socket_connection_or_one_without_a_password_is_not_refused():
    check_url("postgresql://medledger_app:short@/medledger?host=/run/postgresql", "x")
    check_url("postgresql://medledger_app@db.example/medledger", "x")
    with pytest.raises(UnsafeSecret):
        check_url("postgresql://medledger_app:short@db.example/medledger", "x")


def test_the_migration_sets_no_weak_password(database, monkeypatch):
    from ledger.db.migrate import upgrade

    monkeypatch.setenv("MEDLEDGER_REPORTING_PASSWORD", "change-me-too")
    with pytest.raises(UnsafeSecret, match="medledger_reporting"):
        upgrade(database.owner_url)
    query = "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'medledger_reporting'"
    assert fetch(database, query, owner=True)[0][0]


def test_a_password_is_read_from_the_file_its_file_variable_names(tmp_path):
    path = tmp_path / "app_password"
    path.write_text(STRONG + "\n")
    assert secret("MEDLEDGER_APP_PASSWORD", {"MEDLEDGER_APP_PASSWORD_FILE": str(path)}) == STRONG
    assert secret("MEDLEDGER_APP_PASSWORD", {"MEDLEDGER_APP_PASSWORD": STRONG}) == STRONG
    assert secret("MEDLEDGER_APP_PASSWORD", {}) is None
    with pytest.raises(UnsafeSecret, match="both set"):
        secret("MEDLEDGER_APP_PASSWORD", {"MEDLEDGER_APP_PASSWORD": STRONG, "MEDLEDGER_APP_PASSWORD_FILE": str(path)})
    with pytest.raises(UnsafeSecret, match="cannot read"):
        secret("MEDLEDGER_APP_PASSWORD", {"MEDLEDGER_APP_PASSWORD_FILE": str(tmp_path / "missing")})


def test_a_role_gets_the_password_its_file_holds(database, monkeypatch, tmp_path):
    from ledger.db.migrate import upgrade
    from ledger.db.server import MAINTENANCE_ROLE

    path = tmp_path / "maintenance_password"
    path.write_text(STRONG + "\n")
    monkeypatch.setenv("MEDLEDGER_MAINTENANCE_PASSWORD_FILE", str(path))
    upgrade(database.owner_url)
    query = "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = $1"
    assert fetch(database, query, MAINTENANCE_ROLE, owner=True)[0][0]
    fetch(database, f"ALTER ROLE {MAINTENANCE_ROLE} PASSWORD NULL", owner=True)


def test_a_url_without_a_password_takes_its_roles_password_from_a_file(tmp_path):
    from ledger.db.credentials import database_url

    path = tmp_path / "owner"
    path.write_text("p@ss/word:with-signs\n")
    env = {"DATABASE_URL": "postgresql://medledger_owner@postgres:5432/medledger", "POSTGRES_PASSWORD_FILE": str(path)}
    url = database_url("DATABASE_URL", "POSTGRES_PASSWORD", env)
    assert urlsplit(url).hostname == "postgres" and unquote(urlsplit(url).password) == "p@ss/word:with-signs"
    env["POSTGRES_PASSWORD_FILE"] = str(tmp_path / "weak")
    (tmp_path / "weak").write_text("change-me")
    with pytest.raises(UnsafeSecret, match=r"medledger_owner \(POSTGRES_PASSWORD\) is a known default"):
        database_url("DATABASE_URL", "POSTGRES_PASSWORD", env)
