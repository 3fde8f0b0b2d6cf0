"""The settling consumer: a batch of Kafka records becomes one ledger transaction that also stores the offsets.

If the batch does not commit, for whatever reason, the consumer goes back to the offsets stored in PostgreSQL and
reads the same records again; until that rewind has succeeded it settles nothing, so no record is ever skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ledger.db.tracking import OutOfSequence, StaleClaim
from ledger.service import LedgerService, Tracking

from .claims import Claims
from .incoming import incoming, spans
from .metrics import Metrics
from .relay import Relay

log = logging.getLogger("medledger.consumer")


class Settler:
    def __init__(self, service: LedgerService, claims: Claims, metrics: Metrics, relay: Relay | None = None):
        self.service, self.claims, self.metrics, self.relay = service, claims, metrics, relay
        self.must_rewind = False
        self.failures = 0  # batches in a row that did not commit for an unexpected reason

    async def __call__(self, records) -> None:
        if self.failures:
            # The same failure again and again (the database away, a defect): back off, 0.5 s doubling to 30 s.
            await asyncio.sleep(min(0.5 * 2 ** (self.failures - 1), 30.0))
        async with self.claims.lock:
            committed = await self._settle(records)
        if committed and self.relay is not None:
            self.relay.wake()  # the relay publishes while the next batch is read and settled

    async def _settle(self, records) -> bool:
        if self.must_rewind:
            await self._rewind()
            return False  # what was fetched before the rewind is read again from the stored offsets
        read = spans(records)
        self._warn_of_gaps(read)
        started = time.perf_counter()
        tracking = Tracking(self.claims.name, dict(self.claims.held), read)
        try:
            stats = await self.service.ingest_batch([incoming(record) for record in records], tracking)
        except OutOfSequence as behind:
            # Read before the claim's seek took effect: expected after a rebalance, and harmless.
            log.info("batch not committed, reading again from the stored offsets: %s", behind)
            self.must_rewind = True
            await self._rewind()
            return False
        except StaleClaim as fenced:
            self.metrics.stale.inc()
            log.warning("batch not committed: %s", fenced, extra={"records": len(records)})
            self.must_rewind = True
            await self._rewind()
            return False
        except Exception:
            self.metrics.failed.inc()
            self.failures += 1
            log.exception(
                "batch not committed; reading it again", extra={"records": len(records), "failures": self.failures}
            )
            self.must_rewind = True
            await self._rewind()
            return False
        self.failures = 0
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.count(stats)
        for (topic, partition), (_, after) in tracking.spans.items():
            self.claims.committed[(topic, partition)] = after
        if stats.duplicates:
            # Records already in the ledger arriving again: a producer's retry, or offsets not where they should be.
            log.warning("events acknowledged as repeats", extra={"duplicates": stats.duplicates})
        log.debug("batch committed", extra={"records": len(records), "settlements": stats.settlements})
        return True

    def _warn_of_gaps(self, read: dict[tuple[str, int], tuple[int, int]]) -> None:
        """A partition that resumes after where its last batch ended: records deleted by retention before they
        were consumed, or compacted away. The ledger cannot have them; say so loudly."""
        for (topic, partition), (first, _) in read.items():
            expected = self.claims.committed.get((topic, partition))
            if expected is not None and first > expected:
                self.metrics.gaps.inc(first - expected)
                log.error(
                    "offsets %d to %d of %s/%d were never consumed: no longer in the topic",
                    expected,
                    first - 1,
                    topic,
                    partition,
                    extra={"topic": topic, "partition": partition, "missing": first - expected},
                )

    async def _rewind(self) -> None:
        try:
            await self.claims.rewind()
        except Exception:
            log.exception("cannot go back to the stored offsets yet; settling nothing until then")
            return
        self.must_rewind = False
