"""The gateway's settings, from the environment (the broker's are the service's own), and how it reaches the
database: as `medledger_gateway`, a role that reads what a counter asks and writes nothing (migration 0010)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.db.credentials import check_url, database_url, secret
from ledger.db.server import GATEWAY_ROLE, Database, _asyncpg, with_user


def gateway_database(ledger: Callable[[], Database]) -> Database:
    """MEDLEDGER_GATEWAY_DATABASE_URL (its password from MEDLEDGER_GATEWAY_PASSWORD where it names none); or else
    the ledger's database, `ledger()` (the owner's DATABASE_URL or the embedded server), as medledger_gateway with
    MEDLEDGER_GATEWAY_PASSWORD or the embedded server's password for it. Never the service's role: the gateway
    sends what it settles through the event topic, signed, like any producer. A password that is a known default
    or too short is refused (`ledger.db.credentials`)."""
    configured = database_url("MEDLEDGER_GATEWAY_DATABASE_URL", "MEDLEDGER_GATEWAY_PASSWORD")
    if configured:
        return Database(None, _asyncpg(configured))
    db = ledger()
    if db.owner_url is None:
        raise ValueError("with only the service's own database URL, the gateway needs MEDLEDGER_GATEWAY_DATABASE_URL")
    password = secret("MEDLEDGER_GATEWAY_PASSWORD") or db.passwords.get(GATEWAY_ROLE)
    url = with_user(db.owner_url, GATEWAY_ROLE, password)
    check_url(url, "MEDLEDGER_GATEWAY_PASSWORD")
    return Database(None, url, db.embedded_dir)


@dataclass(frozen=True)
class GatewaySettings:
    keys: Path  # MEDLEDGER_GATEWAY_KEYS: TOML, a token per facility
    reference: Path  # MEDLEDGER_GATEWAY_REFERENCE: the directory holding facilities.csv and catalogue.csv
    host: str = "127.0.0.1"
    port: int = 8090
    wait_seconds: float = 5.0  # how long a 2207 or 2208 waits for the ledger's settlement

    @property
    def facilities(self) -> Path:
        return self.reference / "facilities.csv"

    @property
    def catalogue(self) -> Path:
        return self.reference / "catalogue.csv"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GatewaySettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "keys": env.get("MEDLEDGER_GATEWAY_KEYS"),
            "reference": env.get("MEDLEDGER_GATEWAY_REFERENCE"),
            "host": env.get("MEDLEDGER_GATEWAY_HOST"),
            "port": env.get("MEDLEDGER_GATEWAY_PORT"),
            "wait_seconds": env.get("MEDLEDGER_GATEWAY_WAIT"),
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        values = {name: value for name, value in values.items() if value is not None}
        for name in ("keys", "reference"):
            if name not in values:
                raise ValueError(f"MEDLEDGER_GATEWAY_{name.upper()} is not set")
            values[name] = Path(values[name])
        if "port" in values:
            values["port"] = int(values["port"])
        if "wait_seconds" in values:
            values["wait_seconds"] = float(values["wait_seconds"])
        return cls(**values)
