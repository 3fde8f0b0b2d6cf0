"""The gateway's settings, from the environment (the broker's and the database's are the service's own)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> GatewaySettings:
        env = os.environ if environ is None else environ
        values = {
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
