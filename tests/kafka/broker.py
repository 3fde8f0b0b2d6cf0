"""A real Kafka broker for the tests: KAFKA_BOOTSTRAP_SERVERS's, or one started by scripts/kafka/run in a
temporary directory on free loopback ports (the jars are fetched once into the user's cache)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/kafka/run"


def _free_pair() -> int:
    """A port whose successor is free too (the controller listens there)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65_000 and _free(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class TestBroker:
    __test__ = False  # a helper, not a test class

    def __init__(
        self,
        root: Path,
        own: bool = False,
        sasl_users: dict[str, str] | None = None,
        tls: str | None = None,
        acls: bool = False,
    ):
        """`own`: always a broker of its own, which the test may stop and start (KAFKA_BOOTSTRAP_SERVERS aside).
        `sasl_users` (name → password): a broker of its own whose client listener requires SASL (PLAIN or
        SCRAM-SHA-256) from these users; the first is the broker's own.
        `tls` ("server" or "mutual"): a broker of its own whose client listener speaks TLS, with the CA and a
        client's certificate in `tls_dir`; "mutual" requires the client's certificate.
        `acls` (with `sasl_users`): the broker refuses what no ACL allows (`grant` adds medledger's)."""
        external = None if own or sasl_users or tls or acls else os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.env = None
        self.tls_dir = root / "tls"
        if external:
            self.bootstrap = external
            return
        self.env = {**os.environ, "MEDLEDGER_KAFKA_DIR": str(root), "MEDLEDGER_KAFKA_PORT": str(_free_pair())}
        self.env.pop("MEDLEDGER_KAFKA_SASL_USERS", None)
        self.env.pop("MEDLEDGER_KAFKA_TLS", None)
        self.env.pop("MEDLEDGER_KAFKA_ACLS", None)
        if acls:
            self.env["MEDLEDGER_KAFKA_ACLS"] = "on"
        if sasl_users:
            self.env["MEDLEDGER_KAFKA_SASL_USERS"] = ",".join(f"{name}:{secret}" for name, secret in sasl_users.items())
        if tls:
            self.env["MEDLEDGER_KAFKA_TLS"] = tls
        self.bootstrap = self._script("start")

    @property
    def restartable(self) -> bool:
        return self.env is not None

    def _script(self, command: str) -> str:
        done = subprocess.run([str(SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/kafka/run {command} failed:\n{done.stderr}")
        return done.stdout.strip()

    def grant(self, **variables: str) -> None:
        """`scripts/kafka/run acls` with these variables (MEDLEDGER_EVENTS_TOPIC=..., MEDLEDGER_KAFKA_PRODUCERS=...)."""
        done = subprocess.run(
            [str(SCRIPT), "acls"], env={**self.env, **variables}, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/kafka/run acls failed:\n{done.stderr}")

    def stop(self) -> None:
        if self.env is not None:
            self._script("stop")

    def restart(self) -> None:
        self._script("stop")
        self._script("start")
