"""The settling consumer: a batch of Kafka records becomes one ledger transaction that also stores the offsets.

A batch is settled while the one before it commits (`ledger.carry`): the handler settles the new batch, waits for
the previous commit, starts its own, and goes on with what the consumer has fetched meanwhile, until nothing is
left; then it returns. If a batch does not commit, for whatever reason, the consumer goes back to the offsets
stored in PostgreSQL and reads the same records again (the batch settled after it is dropped with it); until that
rewind has succeeded it settles nothing, so no record is ever skipped.

The handler takes what has been fetched twice a batch, once its batch is settled and once it has been handed to
PostgreSQL, not only between batches: the consumer fetches a partition again only once what it fetched before has
been taken, so a record that arrives while a batch is settled would otherwise wait for the batch after next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError

from ledger.carry import Carry, Conflict
from ledger.db.tracking import OutOfSequence, StaleClaim
from ledger.service import IngestStats, LedgerService, Prepared, Tracking, has_year_close

from .claims import Claims
from .incoming import incoming, spans
from .metrics import Metrics
from .poison import ISOLATE_AFTER, Refusals, deterministic, refuse
from .relay import Relay

log = logging.getLogger("medledger.consumer")


COMMITTED, RESETTLED, FAILED = "committed", "resettled", "failed"
TAKE_WAIT = 0.01  # seconds at most to take what is fetched: only a reassignment of partitions makes it wait
# Retrying while something keeps failing (the database away, a defect): 0.5 s, doubling up to these. A rewind is
# retried more often than a batch is settled again: it is what notices the database is back, and nothing
# settles before it.
BACKOFF_CAP = 5.0
REWIND_CAP = 2.0
SAY_WAITING_EVERY = 60.0  # seconds between log lines while waiting for PostgreSQL


@dataclass
class State:
    """Where the settler stands, and what it does next. Only the transitions below change it."""

    rewind_pending: bool = False  # what was taken from the consumer is read again from the stored offsets first
    isolating: bool = False  # settling one record at a time, to find the one that keeps failing
    stopping: bool = False  # shutting down: nothing more is taken from the consumer
    failures: int = 0  # batches in a row that did not commit for an unexpected reason
    waiting_for: str | None = None  # what the stored offsets could not be read for lack of ("postgresql", "kafka")

    def backoff(self) -> float:
        """Seconds to wait before settling again: the same failure again and again (the database away, a defect)
        backs off. A rewind goes first, at once: it settles nothing."""
        if not self.failures or self.rewind_pending:
            return 0.0
        return min(0.5 * 2 ** (self.failures - 1), BACKOFF_CAP)

    def rewind(self) -> None:
        """Something taken from the consumer will not commit: nothing settles until the consumer is back at the
        stored offsets."""
        self.rewind_pending = True

    def rewound(self) -> None:
        """The consumer is back at the stored offsets, and what it hands over next was fetched from there."""
        self.rewind_pending = False

    def committed(self) -> None:
        self.failures = 0

    def failed(self, deterministic: bool) -> bool:
        """A batch did not commit for an unexpected reason: counted, and the consumer goes back. True when this
        failure starts the isolation: the same records failing for a reason they would meet again."""
        self.failures += 1
        self.rewind_pending = True
        starts = deterministic and self.failures >= ISOLATE_AFTER and not self.isolating
        self.isolating = self.isolating or starts
        return starts

    def isolated(self) -> None:
        """A whole batch went through one record at a time: batches are whole again."""
        self.isolating = False

    def waiting(self, dependency: str | None) -> str | None:
        """What the stored offsets now wait for (None: nothing); returns what they waited for before."""
        before, self.waiting_for = self.waiting_for, dependency
        return before

    def stop(self) -> None:
        self.stopping = True


@dataclass
class InFlight:
    prepared: Prepared
    tracking: Tracking  # the offsets it consumed, committed with it
    commit: asyncio.Task[None]
    started: float
    records: int
    committing: float = field(default_factory=time.perf_counter)  # when its commit began


class Settler:
    def __init__(
        self,
        service: LedgerService,
        claims: Claims,
        metrics: Metrics,
        relay: Relay | None = None,
        max_records: int = 2_000,
        running: Callable[[], bool] = lambda: True,
    ):
        self.service, self.claims, self.metrics, self.relay = service, claims, metrics, relay
        self.max_records = max_records
        self.running = running  # False once the subscriber is stopping: what was fetched is left to the next start
        # Taken from the consumer once the batch being settled was, and when its positions had moved so many times
        # (`Claims.moves`): the next batch's first records, unless they have moved since.
        self._early: tuple[list, int] = ([], 0)
        self.state = State()
        self.last_failure: BaseException | None = None
        self.strikes: dict[tuple[str, int, int], int] = {}  # failures of a record settled on its own
        self.refusals = Refusals()
        self.in_flight: InFlight | None = None
        # The last batch landed as committed, with the claims' moves then: what the next batch is settled through
        # when none is in flight (`_read_through`).
        self._landed: tuple[Carry, int] | None = None
        self._landing: set[asyncio.Task] = set()
        self._retrying: asyncio.Task | None = None
        self._said_waiting = 0.0
        claims.before_change = self.land  # a rebalance waits for the batch in flight
        claims.on_unclaimed = self._rewind_later

    async def __call__(self, records: Iterable[Any]) -> None:
        batch, moves = list(records), None
        while batch:
            backoff = self.state.backoff()
            if backoff:
                await asyncio.sleep(backoff)
            async with self.claims.lock:
                if moves is not None and moves != self.claims.moves:
                    # fetched before a rebalance or a rewind moved the positions: read again from where they are now
                    batch, moves = await self._fetched(self.max_records), self.claims.moves
                    continue
                try:
                    await self._settle(batch)
                except BaseException:
                    # Whatever was taken from the consumer is read again from the stored offsets, never skipped.
                    self.state.rewind()
                    self._early = ([], 0)
                    raise
                early, early_moves = self._early
                self._early = ([], 0)
                batch = early if early_moves == self.claims.moves else []
                batch += await self._fetched(self.max_records - len(batch))
                moves = self.claims.moves

    async def _fetched(self, limit: int) -> list:
        """Up to `limit` records the consumer has fetched and not handed over, taken under the claims lock. It does
        not wait: while partitions are being reassigned the consumer holds records back until the new assignment,
        which cannot come before the rebalance listener has had the lock, so then it takes nothing."""
        consumer = self.claims.consumer_of()
        if limit <= 0 or consumer is None or self.state.stopping or not self.running():
            return []
        try:
            fetched = await asyncio.wait_for(consumer.getmany(timeout_ms=0, max_records=limit), TAKE_WAIT)
        except TimeoutError:
            return []
        except Exception as error:  # the subscriber meets it too, and backs off
            log.warning("could not take fetched records: %s", error)
            return []
        return [record for records in fetched.values() for record in records]

    async def drain(self) -> None:
        """At shutdown: the batch in flight commits (or is read again by whoever takes the partitions over)."""
        self.state.stop()
        if self._retrying is not None:
            self._retrying.cancel()
        async with self.claims.lock:
            await self.land()

    async def _settle(self, records: list[Any]) -> None:
        if self.state.rewind_pending:
            await self.land()
            await self._rewind()
            return  # what was fetched before the rewind is read again from the stored offsets
        records = self._not_behind(records)
        if not records:
            return
        if self.state.isolating:
            if await self.land() != FAILED and not self.state.rewind_pending:
                await self._one_by_one(records)
            if self.state.rewind_pending:
                await self._rewind()
            return
        read = spans(records)
        self._warn_of_gaps(read)
        started = time.perf_counter()
        self._observe_fetched(records)
        tracking = Tracking(self.claims.name, dict(self.claims.held), read)
        items = [incoming(record) for record in records]
        if has_year_close(items):
            if await self.land() != FAILED:
                await self._finish(self.service.ingest_batch(items, tracking), tracking, started, len(records))
            if self.state.rewind_pending:
                await self._rewind()
            return
        carried = self.in_flight.prepared.carry if self.in_flight is not None else self._read_through()
        failure: Exception | None = None
        try:
            prepared = await self.service.prepare(items, carried, tracking)
        except Exception as error:
            log.exception("batch not settled; reading it again", extra={"records": len(records)})
            prepared, failure = None, error
        self._early = (await self._fetched(self.max_records), self.claims.moves)
        settled = time.perf_counter()
        self.metrics.stages.labels("settled").observe(settled - started)
        landed = await self.land()
        self.metrics.stages.labels("landed").observe(time.perf_counter() - settled)
        if landed == FAILED or self.state.rewind_pending:
            # The batch before did not commit: this one is read again after it.
            if self.state.rewind_pending:
                await self._rewind()
            return
        if prepared is not None and landed == RESETTLED:
            prepared = None  # settled again from the ledger: what this batch read through is gone
            try:
                prepared = await self.service.prepare(items, None, tracking)
            except Exception as error:
                log.exception("batch not settled; reading it again", extra={"records": len(records)})
                failure = error
        if prepared is None:
            await self._failed(failure)
            return
        self._landed = None  # the next batch reads through this one: the one before it is let go
        commit = asyncio.create_task(self.service.commit(prepared))
        flight = InFlight(prepared, tracking, commit, started, len(records))
        flight.commit.add_done_callback(lambda _: self._committed_meanwhile(flight))
        self.in_flight = flight

    def _read_through(self) -> Carry | None:
        """With no batch in flight, the last one committed: the next batch is settled through it as through a batch
        still committing, and reads again only what it did not touch, instead of the regions' heads, arrivals, the
        closed years and the watermark every time the traffic pauses long enough for a batch to land before the
        next one arrives. Its commit checks, as any batch's, that the ledger is still where that batch left it
        (another writer in between: settled again from the ledger). Not after anything moved the consumer's
        positions (a rewind, a rebalance), nor once a batch was written any other way (settled again, one by one,
        a year close): then the next batch reads the ledger afresh."""
        if self._landed is None:
            return None
        carry, moves = self._landed
        if moves != self.claims.moves or self.state.rewind_pending:
            self._landed = None
            return None
        return carry

    def _observe_fetched(self, records: list[Any]) -> None:
        """From the oldest record's timestamp (its producer's clock, or the broker's) to now."""
        stamps = [record.timestamp for record in records if isinstance(record.timestamp, int)]
        if stamps:
            self.metrics.stages.labels("fetched").observe(max(time.time() - min(stamps) / 1000, 0.0))

    def _committed_meanwhile(self, flight: InFlight) -> None:
        self.metrics.stages.labels("committed").observe(time.perf_counter() - flight.committing)
        # Published now rather than when the next batch arrives, which may be a while; handed over as they are.
        if self.relay is not None and not flight.commit.cancelled():
            if flight.commit.exception() is not None:
                self.relay.wake()  # a COMMIT whose answer was lost may have committed all the same
            elif flight.prepared.handoff is not None:
                self.relay.hand(flight.prepared.handoff)
            elif flight.prepared.published:
                self.relay.wake()  # its records are not the outbox's next: read back
        task = asyncio.get_running_loop().create_task(self._land_when_quiet(flight))
        self._landing.add(task)
        task.add_done_callback(self._landing.discard)

    async def _land_when_quiet(self, flight: InFlight) -> None:
        """With no next batch to land it, the batch in flight is landed here. If it did not commit, the consumer
        goes back to the stored offsets now (retrying while the database is away), so the batch is read again
        even if nothing else arrives; and the next batch handed over is dropped too, as it may have been fetched
        before that seek."""
        async with self.claims.lock:
            if self.in_flight is not flight or await self.land() != FAILED:
                return
            self.state.rewind()
            if await self._seek_back():
                return  # the pending rewind drops the next batch
        self._rewind_later()

    async def land(self) -> str:
        """Wait for the batch in flight to commit and account for it: COMMITTED; RESETTLED when it conflicted
        with another writer and was settled again from the ledger (what it carried is not to be read through);
        FAILED when it did not commit (nothing settled after it may commit either)."""
        flight, self.in_flight = self.in_flight, None
        if flight is None:
            return COMMITTED
        prepared = flight.prepared

        async def committed() -> IngestStats:
            await flight.commit
            return prepared.outcome()

        try:
            await asyncio.shield(flight.commit)
        except asyncio.CancelledError:
            self.in_flight = flight  # still committing: whoever lands next waits for it
            raise
        except Conflict:
            self.metrics.resettled.inc()
            again = self.service.ingest_batch(prepared.items, flight.tracking)
            done = await self._finish(again, flight.tracking, flight.started, flight.records)
            return RESETTLED if done else FAILED
        except Exception:
            pass  # accounted for below, as any batch that did not commit
        done = await self._finish(committed(), flight.tracking, flight.started, flight.records, handed=True)
        if done:
            self._landed = (prepared.carry, self.claims.moves)
        return COMMITTED if done else FAILED

    async def _finish(
        self, work: Awaitable[IngestStats], tracking: Tracking, started: float, records: int, handed: bool = False
    ) -> bool:
        """Account for a batch's commit. `handed`: its records went to the relay as it committed (a batch written
        any other way wakes the relay to read them from the outbox)."""
        self._landed = None  # whatever this batch is, the next one reads through no batch before it
        try:
            stats = await work
        except OutOfSequence as behind:
            # Read before the claim's seek took effect: expected after a rebalance, and harmless.
            log.info("batch not committed, reading again from the stored offsets: %s", behind)
            self.state.rewind()
            return False
        except StaleClaim as fenced:
            self.metrics.stale.inc()
            log.warning("batch not committed: %s", fenced, extra={"records": records})
            self.state.rewind()
            return False
        except Exception as error:
            log.exception("batch not committed; reading it again", extra={"records": records})
            await self._failed(error)
            return False
        self.state.committed()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.count(stats)
        for (topic, partition), (_, after) in tracking.spans.items():
            self.claims.committed[(topic, partition)] = after
        if stats.duplicates:
            # Records already in the ledger arriving again: a producer's retry, or offsets not where they should be.
            log.warning("events acknowledged as repeats", extra={"duplicates": stats.duplicates})
        log.debug("batch committed", extra={"records": records, "settlements": stats.settlements})
        if self.relay is not None and not handed:
            self.relay.wake()
        return True

    async def _failed(self, error: BaseException | None = None) -> None:
        self.metrics.failed.inc()
        self.last_failure = error
        if self.state.failed(deterministic(error)):
            log.warning("the same records keep failing; settling them one at a time to find the one that does")
        await self._rewind()

    def forget(self, partition: tuple[str, int]) -> None:
        """A partition read again from the start of its log (`Claims.on_rebase`): its offsets name other records
        now, which owe nothing to the failures counted at the same offsets before."""
        self.strikes = {where: count for where, count in self.strikes.items() if where[:2] != partition}

    async def _one_by_one(self, records: list[Any]) -> None:
        """Each record its own transaction, in the order read. One that fails for a reason it would meet again
        is tried `ISOLATE_AFTER` times, then refused; any other failure rewinds as always. Once a whole batch
        went through, batches are whole again."""
        self._warn_of_gaps(spans(records))
        for record in records:
            tracking = Tracking(self.claims.name, dict(self.claims.held), spans([record]))
            started = time.perf_counter()
            self.last_failure = None
            if await self._finish(self.service.ingest_batch([incoming(record)], tracking), tracking, started, 1):
                continue
            failure = self.last_failure
            if failure is None or not deterministic(failure):
                return  # the database, the claims: read again from the stored offsets, as for any batch
            where = (record.topic, record.partition, record.offset)
            self.strikes[where] = self.strikes.get(where, 0) + 1
            if self.strikes[where] < ISOLATE_AFTER:
                return
            if not self.refusals.allowed(failure, time.monotonic()):
                log.error(
                    "record %s/%d/%d fails as records already refused this hour did (%s): a defect, not one bad "
                    "record; it waits, and is retried, until the cause is fixed",
                    *where,
                    failure,
                )
                return
            refused = refuse(incoming(record), failure, self.strikes[where])
            log.error(
                "record %s/%d/%d refused after failing %d times: %s",
                *where,
                self.strikes[where],
                failure,
                extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
            )
            if await self._finish(self.service.ingest_batch([refused], tracking), tracking, started, 1):
                self.metrics.unprocessable.inc()
                self.strikes.pop(where, None)
                self.refusals.add(failure, time.monotonic())
            self.state.rewind()  # the consumer was sent back to this record; it goes on after it
            return
        self.state.isolated()
        self.strikes = {}

    def _resumes(self, partition: tuple[str, int]) -> int | None:
        """Where the next record of a partition is expected: after the batch in flight, else after the last batch
        committed (None: nothing committed by this consumer since it claimed the partition with no offset)."""
        ahead = {} if self.in_flight is None else self.in_flight.tracking.spans
        if partition in ahead:
            return ahead[partition][1]
        return self.claims.committed.get(partition)

    def _not_behind(self, records: list[Any]) -> list[Any]:
        """The records from where their partitions resume. One before is settled or in flight already: fetched
        before a seek took effect, and handed over after it. Dropped here, quietly: the ledger would refuse the
        batch (`OutOfSequence`), and a batch settled after it would seem to skip the offsets between."""
        where = {key: self._resumes(key) for key in {(record.topic, record.partition) for record in records}}
        kept = [r for r in records if (at := where[(r.topic, r.partition)]) is None or r.offset >= at]
        if len(kept) < len(records):
            log.info("records read before a seek took effect dropped", extra={"records": len(records) - len(kept)})
        return kept

    def _warn_of_gaps(self, read: dict[tuple[str, int], tuple[int, int]]) -> None:
        """A partition that resumes after where its last batch ended: records deleted by retention before they
        were consumed, or compacted away. The ledger cannot have them; say so loudly."""
        for (topic, partition), (first, _) in read.items():
            expected = self._resumes((topic, partition))
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
        """Back to the stored offsets before this batch settles anything; what was fetched before is dropped with
        it. A seek done in the background leaves the rewind pending: the batch it finds next may have been fetched
        before the seek, and is dropped here."""
        if await self._seek_back():
            self.state.rewound()
        else:
            self._rewind_later()

    def _rewind_later(self) -> None:
        """Go back to the stored offsets in the background, retrying until it is done: the records taken from
        the consumer are gone from it, so nothing else would bring the consumer back to them."""
        self.state.rewind()
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._keep_rewinding())

    async def _keep_rewinding(self) -> None:
        delay = 0.5
        while not self.state.stopping:
            await asyncio.sleep(delay)
            async with self.claims.lock:
                if not self.state.rewind_pending or await self._seek_back():
                    return  # a batch has rewound meanwhile, or the seek is done (the pending rewind drops the next one)
            delay = min(delay * 2, REWIND_CAP)

    async def _seek_back(self) -> bool:
        try:
            await self.claims.rewind()
        except Exception as error:
            now, waiting = time.monotonic(), self.state.waiting_for
            dependency = "kafka" if isinstance(error, KafkaError) else "postgresql"
            if waiting != dependency or now - self._said_waiting >= SAY_WAITING_EVERY:
                self._said_waiting = now
                log.exception(
                    "waiting for %s: cannot go back to the stored offsets (%s); settling nothing until then, "
                    "retried every %.0f s at most",
                    _NAMES[dependency],
                    error,
                    REWIND_CAP,
                    extra={"waiting_for": dependency},
                )
            self._wait(dependency)
            return False
        if self.state.waiting_for is not None:
            log.warning("%s answers again: settling resumes from the stored offsets", _NAMES[self.state.waiting_for])
        self._wait(None)
        return True

    def _wait(self, dependency: str | None) -> None:
        before = self.state.waiting(dependency)
        if before is not None and before != dependency:
            self.metrics.waiting.labels(before).set(0)
        if dependency is not None:
            self.metrics.waiting.labels(dependency).set(1)


_NAMES = {"postgresql": "PostgreSQL", "kafka": "the Kafka broker"}
