"""The service's settings, from the environment (twelve-factor): nothing to edit in a file to deploy it."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"  # scripts/kafka/run


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    group_id: str = "medledger"
    # Static membership: an instance that restarts under the same id gets its partitions back at once, with no
    # rebalance. None: a new member at each start, which waits for the group to notice the old one is gone.
    group_instance_id: str | None = None
    events_topic: str = "medledger.events"
    settlements_topic: str = "medledger.settlements"
    rejections_topic: str = "medledger.rejections"
    reporting_group_id: str = "medledger-reporting"
    batch_size: int = 2_000
    metrics_port: int | None = 9_464
    partitioner: str = "murmur2"  # how producers place a region's events: see `partitioning`
    # Loopback unless told otherwise: a container sets 0.0.0.0 to be reached on its own network (docker-compose.yml).
    metrics_host: str = "127.0.0.1"
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    producers: str | None = None  # the producers file: public keys and permissions (`ledger.authority`)
    producer: str | None = None  # `produce`: the producer it signs as, with the private key in `producer_key`
    producer_key: str | None = None
    producer_key_id: str | None = None
    ledger_key: str | None = field(default=None, repr=False)  # the relay's private key: it signs what it publishes
    ledger_public_key: str | None = None  # the reporting consumer's: what it verifies the relay's records with
    # How long `medledger produce` waits for a broker it cannot reach (at start, or while sending) before it
    # gives up, in seconds.
    broker_wait: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        read: dict[str, Any] = {
            "bootstrap_servers": env.get("KAFKA_BOOTSTRAP_SERVERS"),
            "group_id": env.get("MEDLEDGER_GROUP_ID"),
            "group_instance_id": env.get("MEDLEDGER_GROUP_INSTANCE_ID", _instance_id(env)),
            "events_topic": env.get("MEDLEDGER_EVENTS_TOPIC"),
            "settlements_topic": env.get("MEDLEDGER_SETTLEMENTS_TOPIC"),
            "rejections_topic": env.get("MEDLEDGER_REJECTIONS_TOPIC"),
            "reporting_group_id": env.get("MEDLEDGER_REPORTING_GROUP_ID"),
            "batch_size": _int(env.get("MEDLEDGER_BATCH_SIZE")),
            "metrics_port": _port(env.get("MEDLEDGER_METRICS_PORT")),
            "partitioner": env.get("MEDLEDGER_PARTITIONER"),
            "metrics_host": env.get("MEDLEDGER_METRICS_HOST"),
            "security_protocol": env.get("KAFKA_SECURITY_PROTOCOL"),
            "sasl_mechanism": env.get("KAFKA_SASL_MECHANISM"),
            "sasl_username": env.get("KAFKA_SASL_USERNAME"),
            "sasl_password": env.get("KAFKA_SASL_PASSWORD"),
            "ssl_cafile": env.get("KAFKA_SSL_CAFILE"),
            "ssl_certfile": env.get("KAFKA_SSL_CERTFILE"),
            "ssl_keyfile": env.get("KAFKA_SSL_KEYFILE"),
            "producers": env.get("MEDLEDGER_PRODUCERS"),
            "producer": env.get("MEDLEDGER_PRODUCER"),
            "producer_key": env.get("MEDLEDGER_PRODUCER_KEY"),
            "producer_key_id": env.get("MEDLEDGER_PRODUCER_KEY_ID"),
            "ledger_key": env.get("MEDLEDGER_LEDGER_KEY"),
            "ledger_public_key": env.get("MEDLEDGER_LEDGER_PUBLIC_KEY"),
            "broker_wait": _seconds(env.get("MEDLEDGER_BROKER_WAIT_SECONDS")),
        }
        values = {name: value for name, value in read.items() if value is not None}
        values["group_instance_id"] = read["group_instance_id"] or None  # empty: static membership off
        if "MEDLEDGER_METRICS_PORT" in env:
            values["metrics_port"] = read["metrics_port"]
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    def security(self) -> BaseSecurity | None:
        protocol = self.security_protocol.upper()
        if protocol not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL: unknown protocol {self.security_protocol!r}")
        context = None
        if protocol.endswith("SSL"):
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        if protocol.startswith("SASL"):
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError("SASL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
            mechanisms = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
            kind = mechanisms.get(self.sasl_mechanism.upper())
            if kind is None:
                raise ValueError(f"KAFKA_SASL_MECHANISM: unknown mechanism {self.sasl_mechanism!r}")
            return kind(self.sasl_username, self.sasl_password, ssl_context=context, use_ssl=context is not None)
        if context is not None:
            return BaseSecurity(ssl_context=context)
        return None


def environment(settings: Settings) -> dict[str, str]:
    """The producer and ledger key settings as the environment names them (for a command started by another)."""
    names = {
        "producers": "MEDLEDGER_PRODUCERS",
        "producer": "MEDLEDGER_PRODUCER",
        "producer_key": "MEDLEDGER_PRODUCER_KEY",
        "producer_key_id": "MEDLEDGER_PRODUCER_KEY_ID",
        "ledger_key": "MEDLEDGER_LEDGER_KEY",
        "ledger_public_key": "MEDLEDGER_LEDGER_PUBLIC_KEY",
    }
    return {name: getattr(settings, field) for field, name in names.items() if getattr(settings, field) is not None}


def _instance_id(env: Mapping[str, str]) -> str:
    """The default group instance id: the host's name, and MEDLEDGER_INSTANCE after it when set. Instances of one
    group on one host need an id each (MEDLEDGER_INSTANCE=1, 2, ...): an id used twice at once is fenced by the
    broker. In a container the host name is the container's, one per instance."""
    suffix = env.get("MEDLEDGER_INSTANCE", "")
    return socket.gethostname() + (f"-{suffix}" if suffix else "")


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _seconds(value: str | None) -> float | None:
    return None if value is None else float(value)


def _port(value: str | None) -> int | None:
    """An empty MEDLEDGER_METRICS_PORT turns the endpoint off."""
    return None if not value else int(value)
