"""How `medledger gateway` reaches the database: as medledger_gateway, never as the service's role."""

from __future__ import annotations

import asyncio

import pytest

from gateway.settings import gateway_database
from ledger.db.credentials import UnsafeSecret
from ledger.db.server import Database
from ledger.enquiry import Enquiry, LedgerReader
from tests.ledger.helpers import IM_PARAMETERS

STRONG = "k3yQ9vTz7wLp2XcR4mNb"
OWNER = Database("postgresql+asyncpg://medledger_owner:owner-password-long@postgres:5432/medledger", "unused")


def _unreached() -> Database:
    raise AssertionError("the ledger's own database was looked up")


def test_the_gateways_own_url_is_used_alone_with_its_password(monkeypatch):
    monkeypatch.setenv("MEDLEDGER_GATEWAY_DATABASE_URL", "postgresql://medledger_gateway@postgres:5432/medledger")
    monkeypatch.setenv("MEDLEDGER_GATEWAY_PASSWORD", STRONG)
    db = gateway_database(_unreached)
    assert db.owner_url is None
    assert db.app_url == f"postgresql+asyncpg://medledger_gateway:{STRONG}@postgres:5432/medledger"


def test_given_the_owners_database_the_gateway_connects_as_its_own_role(monkeypatch):
    monkeypatch.delenv("MEDLEDGER_GATEWAY_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_GATEWAY_PASSWORD", STRONG)
    db = gateway_database(lambda: OWNER)
    assert db.owner_url is None  # it never holds the owner's rights
    assert db.app_url == f"postgresql+asyncpg://medledger_gateway:{STRONG}@postgres:5432/medledger"


def test_the_gateway_refuses_a_weak_password_and_the_services_url_alone(monkeypatch):
    monkeypatch.delenv("MEDLEDGER_GATEWAY_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_GATEWAY_PASSWORD", "change-me")
    with pytest.raises(UnsafeSecret, match="MEDLEDGER_GATEWAY_PASSWORD"):
        gateway_database(lambda: OWNER)
    with pytest.raises(ValueError, match="MEDLEDGER_GATEWAY_DATABASE_URL"):
        gateway_database(lambda: Database(None, "postgresql+asyncpg://medledger_app@postgres:5432/medledger"))


def test_a_ledger_reader_not_yet_opened_says_so_when_asked():
    reader = LedgerReader(OWNER, IM_PARAMETERS)
    with pytest.raises(RuntimeError, match="not open for reading"):
        _ = reader.pool
    with pytest.raises(RuntimeError, match="not open for reading"):
        asyncio.run(Enquiry(reader).outcomes(["E1"]))
