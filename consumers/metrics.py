"""Prometheus metrics of the service, served on /metrics (MEDLEDGER_METRICS_PORT, default 9464)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from ledger.service import IngestStats


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("medledger_events_consumed", "Events read from the broker and committed", registry=r)
        self.duplicates = Counter("medledger_events_duplicate", "Events acknowledged as repeats", registry=r)
        self.settlements = Counter("medledger_settlements", "Settlements and reversals written", registry=r)
        self.movements = Counter("medledger_account_movements", "Account movements written", registry=r)
        self.rejections = Counter("medledger_rejections", "Events refused, with the reason kept", registry=r)
        self.parked = Counter("medledger_events_parked", "Events waiting for their member's enrolment", registry=r)
        self.stale = Counter(
            "medledger_batches_fenced", "Batches refused because a partition was claimed elsewhere", registry=r
        )
        self.failed = Counter("medledger_batches_failed", "Batches rolled back and read again", registry=r)
        self.resettled = Counter(
            "medledger_batches_resettled",
            "Batches settled again because another writer appended while they were settled",
            registry=r,
        )
        self.gaps = Counter(
            "medledger_offsets_skipped", "Offsets gone from a partition before they were consumed", registry=r
        )
        self.unprocessable = Counter(
            "medledger_events_unprocessable",
            "Records refused because settling them failed again and again (reason unprocessable)",
            registry=r,
        )
        self.rebased = Counter(
            "medledger_offsets_rebased",
            "Partitions read again from the start because the stored offset was past the end of the log",
            registry=r,
        )
        self.misrouted = Counter(
            "medledger_misrouted",
            "Events found on a partition other than their region's: refused (reason misrouted), or acknowledged as "
            "a repeat of such a record already refused",
            registry=r,
        )
        self.partitions = Gauge(
            "medledger_event_partitions", "Partitions of the event topic, as last read from the broker", registry=r
        )
        self.partitions_configured = Gauge(
            "medledger_event_partitions_configured",
            "Partitions of the event topic serve computes each region's partition with (--partitions)",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "medledger_batch_seconds",
            "Time to settle and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        # Where a record's time goes between its producer and the broker's acknowledgement of what it published
        # (docs/kafka.md#latency): `fetched` from the record's timestamp to the batch taking it, `settled` the
        # batch's settling, `landed` the wait for the batch before it to commit, `committed` its own commit,
        # `relayed` from its commit to the broker's acknowledgement of its records, `published` that send alone,
        # `collected` a pause of the cyclic garbage collector.
        self.stages = Histogram(
            "medledger_stage_seconds",
            "Time a batch spent in each stage from the producer to the output topic",
            ("stage",),
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=r,
        )
        self.lag = Gauge(
            "medledger_consumer_lag", "Records in the partition not yet committed", ("topic", "partition"), registry=r
        )
        self.waiting = Gauge(
            "medledger_consumer_waiting",
            "1 while settling waits for a dependency (postgresql, kafka) to answer again; the lag grows meanwhile",
            ("dependency",),
            registry=r,
        )
        self.relayed = Counter("medledger_outbox_relayed", "Outbox records published", ("stream",), registry=r)
        self.outbox_behind = Gauge("medledger_outbox_pending", "Outbox records not yet published", registry=r)
        self.relay_failed = Counter(
            "medledger_relay_failures", "Times the relay could not publish or record, and will retry", registry=r
        )

    def count(self, stats: IngestStats) -> None:
        self.consumed.inc(stats.read - stats.duplicates)
        self.duplicates.inc(stats.duplicates)
        self.settlements.inc(stats.settlements)
        self.movements.inc(stats.movements)
        self.rejections.inc(stats.rejected)
        self.parked.inc(stats.parked)

    def serve(self, port: int, address: str = "127.0.0.1") -> tuple[Any, Any]:
        return start_http_server(port, addr=address, registry=self.registry)
