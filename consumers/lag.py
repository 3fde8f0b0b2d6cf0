"""Consumer lag for /metrics: per partition this instance holds, the records not yet committed to the ledger."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

Key = tuple[str, int]


class Lag:
    def __init__(self, gauge: Gauge):
        self.gauge = gauge
        self.shown: set[Key] = set()

    async def update(self, consumer: Any, held: set[Key], fenced: set[Key], committed: dict[Key, int]) -> None:
        """From `Claims`: the partitions claimed in the ledger, those another instance has claimed since, and the
        next offset after the last batch committed where there was one (none: consumption starts at the log's
        beginning, so all of it is behind).

        A partition given up or claimed elsewhere is the other instance's to report: its figure here goes, or a
        total over instances would count it twice. One assigned and not claimed yet (a rebalance under way)
        keeps its figure until it is."""
        assigned = {(tp.topic, tp.partition): tp for tp in consumer.assignment()}
        for key in {key for key in self.shown if key not in assigned or key in fenced}:
            self.gauge.remove(key[0], str(key[1]))
            self.shown.discard(key)
        mine = {key: tp for key, tp in assigned.items() if key in held and key not in fenced}
        ends = {key: consumer.highwater(tp) for key, tp in mine.items()}  # None until a fetch answered
        unknown = [tp for key, tp in mine.items() if key not in committed and ends[key] is not None]
        starts = await consumer.beginning_offsets(unknown) if unknown else {}
        for key, tp in mine.items():
            start = committed.get(key, starts.get(tp))
            if ends[key] is None or start is None:
                continue
            self.gauge.labels(key[0], str(key[1])).set(max(ends[key] - start, 0))
            self.shown.add(key)
