"""The settling consumer: a batch of Kafka records becomes one ledger transaction that also stores the offsets.

If the batch does not commit, for whatever reason, the consumer goes back to the offsets stored in PostgreSQL and
reads the same records again; until that rewind has succeeded it settles nothing, so no record is ever skipped.
"""

from __future__ import annotations

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

    async def __call__(self, records) -> None:
        async with self.claims.lock:
            await self._settle(records)

    async def _settle(self, records) -> None:
        if self.must_rewind:
            await self._rewind()
            return  # what was fetched before the rewind is read again from the stored offsets
        started = time.perf_counter()
        tracking = Tracking(self.claims.name, dict(self.claims.held), spans(records))
        try:
            stats = await self.service.ingest_batch([incoming(record) for record in records], tracking)
        except OutOfSequence as behind:
            # Read before the claim's seek took effect: expected after a rebalance, and harmless.
            log.info("batch not committed, reading again from the stored offsets: %s", behind)
            self.must_rewind = True
            await self._rewind()
            return
        except StaleClaim as fenced:
            self.metrics.stale.inc()
            log.warning("batch not committed: %s", fenced, extra={"records": len(records)})
            self.must_rewind = True
            await self._rewind()
            return
        except Exception:
            self.metrics.failed.inc()
            log.exception("batch not committed; reading it again", extra={"records": len(records)})
            self.must_rewind = True
            await self._rewind()
            return
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.count(stats)
        for (topic, partition), (_, after) in tracking.spans.items():
            self.claims.committed[(topic, partition)] = after
        if self.relay is not None:
            await self.relay.flush()
        log.debug("batch committed", extra={"records": len(records), "settlements": stats.settlements})

    async def _rewind(self) -> None:
        try:
            await self.claims.rewind()
        except Exception:
            log.exception("cannot go back to the stored offsets yet; settling nothing until then")
            return
        self.must_rewind = False
