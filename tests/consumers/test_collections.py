"""serve counts the garbage collector's pauses without taking a lock in the collector's callback: a collection can
start while the same thread holds a metric's lock, and a callback that took it would wait for itself for ever."""

from __future__ import annotations

import gc
import threading

from consumers.app import Service
from ledger.service import LedgerService
from tests.kafka.conftest import own_settings


def test_a_collection_while_a_metric_is_locked_is_counted_without_waiting_for_the_lock():
    service = Service(own_settings("127.0.0.1:1"), LedgerService(None))
    gc.callbacks.append(service._collecting)
    try:
        stages = service.metrics.stages

        def collect_holding_the_lock() -> None:
            with stages._lock:  # as when a collection starts inside `labels()`
                gc.collect()

        collecting = threading.Thread(target=collect_holding_the_lock, daemon=True)
        collecting.start()
        collecting.join(10)
        assert not collecting.is_alive(), "the collector's callback waited for a lock its own thread held"
    finally:
        gc.callbacks.remove(service._collecting)
    service._count_collections()
    count = service.metrics.registry.get_sample_value("medledger_stage_seconds_count", {"stage": "collected"})
    assert count is not None and count >= 1
