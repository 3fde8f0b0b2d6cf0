"""The gateway's Prometheus metrics, served on its own /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.answered = Counter(
            "medledger_gateway_requests",
            "Messages answered, by transaction and infcode",
            ("infno", "infcode"),
            registry=r,
        )
        self.refused = Counter(
            "medledger_gateway_refusals",
            "Messages refused (signature, envelope, input, or the ledger's refusal), by reason",
            ("reason",),
            registry=r,
        )
        self.seconds = Histogram(
            "medledger_gateway_seconds",
            "Time to answer a message, by transaction",
            ("infno",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
