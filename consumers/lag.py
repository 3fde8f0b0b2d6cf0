"""Consumer lag for /metrics: per partition this instance holds, the records not yet committed to the ledger."""

from __future__ import annotations

from prometheus_client import Gauge


class Lag:
    def __init__(self, gauge: Gauge):
        self.gauge = gauge
        self.shown: set[tuple[str, int]] = set()

    async def update(self, consumer, committed: dict[tuple[str, int], int]) -> None:
        """`committed`: the next offset after the last batch committed, per partition (none yet: consumption starts
        at the log's beginning, so all of it is behind)."""
        assigned = {(tp.topic, tp.partition): tp for tp in consumer.assignment()}
        for topic, partition in self.shown - assigned.keys():
            # given up: the instance holding it now reports it, and a stale figure here would double the total
            self.gauge.remove(topic, str(partition))
        self.shown &= assigned.keys()
        ends = {key: consumer.highwater(tp) for key, tp in assigned.items()}  # None until a fetch answered
        unknown = [tp for key, tp in assigned.items() if key not in committed and ends[key] is not None]
        starts = await consumer.beginning_offsets(unknown) if unknown else {}
        for key, tp in assigned.items():
            start = committed.get(key, starts.get(tp))
            if ends[key] is None or start is None:
                continue
            self.gauge.labels(key[0], str(key[1])).set(max(ends[key] - start, 0))
            self.shown.add(key)
