"""The outbox relay: publishes what committed batches wrote to the outbox, in commit order, and records how far it
got. One relay publishes at a time (a session lock in PostgreSQL); another instance's relay waits to take over.

The batches its own service commits are handed to it with their outbox positions (`Handoff`) and published as
they are, with no read of the outbox, whenever they follow on from what it has published; anything else that
commits (another process's batches, heard of by NOTIFY; a batch settled again; the parking sweep) is read from
the outbox. Its position is recorded at most every RECORD_EVERY seconds while records keep coming, and at once
when they stop.

Delivery is at least once: a crash between the broker's acknowledgement and the recorded position publishes those
records again. Consumers deduplicate by `settlement_id` / `movement_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable

import asyncpg
import orjson

from ledger.db.connect import Pool
from ledger.db.connection import Raw
from ledger.db.event_store import reading
from ledger.db.outbox import CHANNEL, REJECTIONS, SETTLEMENTS, Gaps, Handoff, pending, record_relayed, relayed
from ledger.service import LedgerService

from .metrics import Metrics
from .producer import BatchProducer

RELAY_LOCK = 0x6D656D72  # "memr"
# Below the broker's default message limit (1 MB) with room for the key and headers.
MAX_VALUE_BYTES = 900_000
# Seconds the relay waits, with batches handed to it, for a position before them to commit (or be rolled back).
GAP_WAIT = 0.02
# Seconds the relay may go on publishing before it records its position: a round trip a batch saved, against
# at most that much published again after a crash.
RECORD_EVERY = 0.25
log = logging.getLogger("medledger.relay")


def publishable(value: str) -> str:
    """The record as published. A rejection echoing a huge payload would exceed the broker's message limit and
    stop the relay at that record for good; its payload is replaced by a pointer to the rejection table, which
    keeps the whole payload."""
    # A character is at most 4 bytes in UTF-8: most records need no encoding to know they fit.
    if len(value) * 4 <= MAX_VALUE_BYTES or len(value.encode()) <= MAX_VALUE_BYTES:
        return value
    record = orjson.loads(value)
    payload = record.get("payload")
    text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    record["payload"] = {
        "omitted": f"{len(text.encode())} bytes, kept in ledger_rejections",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    value = orjson.dumps(record).decode()
    if len(value.encode()) > MAX_VALUE_BYTES:  # not a payload's fault: keep the identifying fields only
        keep = ("settlement_id", "movement_id", "rejected", "reason", "member_id", "region", "event_id")
        value = orjson.dumps({k: record[k] for k in keep if k in record} | {"truncated": True}).decode()
    return value


class Relay:
    def __init__(
        self,
        service: LedgerService,
        producer: BatchProducer,
        topics: dict[str, str],
        metrics: Metrics | None = None,
        name: str = "medledger",
        chunk: int = 2_000,
        idle_seconds: float = 0.5,
    ):
        missing = {SETTLEMENTS, REJECTIONS} - set(topics)
        if missing:
            raise ValueError(f"no topic for the streams {sorted(missing)}")
        self.service, self.producer, self.topics, self.metrics = service, producer, topics, metrics
        self.name, self.chunk, self.idle_seconds = name, chunk, idle_seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._leading: Raw | None = None  # the connection holding the relay lock, while this relay leads
        self._after: int | None = None  # the position it has published up to, while it leads
        self._gaps = Gaps()  # the outbox positions it found missing, while it leads (`outbox.Gaps`)
        self._recorded: int | None = None  # the position last recorded, while it leads
        self._recorded_at = 0.0
        self._handed: deque[tuple[Handoff, float]] = deque()  # each with when it was handed over (committed)
        self._handed_rows = 0
        self._read = True  # the outbox may hold committed records this relay was not handed
        self._busy = asyncio.Lock()

    def wake(self) -> None:
        """Something committed that was not handed over: the relay reads the outbox."""
        self._read = True
        self._wake.set()

    def hand(self, handoff: Handoff) -> None:
        """A batch its own service committed. Only a leading relay keeps it (a relay that takes the lead reads the
        outbox from its recorded position), and only so many records: past that it reads them back instead."""
        if self._leading is None:
            return
        if self._handed_rows + len(handoff.rows) > 2 * self.chunk:
            self._handed.clear()
            self._handed_rows = 0
            self.wake()
            return
        self._handed.append((handoff, time.perf_counter()))
        self._handed_rows += len(handoff.rows)
        self._wake.set()

    async def flush(self, chunks: int = 2) -> None:
        """Publish what has committed, now, up to `chunks` chunks read from the outbox, and record the position:
        at shutdown, once the consumer's last batch has committed. What remains (or everything, when another
        instance's relay leads) is the loop's."""
        try:
            async with self._busy:
                if self._leading is not None:
                    self._read = True
                    for _ in range(chunks):
                        if not await self._publish(self._leading) and not self._read:
                            break
                    await self._record(self._leading)
        except Exception:
            log.exception("publishing after the batch failed; the relay will retry")
        self.wake()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay failed; retrying")
                if self.metrics:
                    self.metrics.relay_failed.inc()
                    await self._measure_behind(self.metrics)
                await self._pause(1.0)

    def _pool(self) -> Pool:
        if self.service.pool is None:
            raise ConnectionError("the ledger service is not open")
        return self.service.pool

    async def _measure_behind(self, metrics: Metrics) -> None:
        """While it cannot publish, how far the outbox has gone past the position recorded: the figure grows as
        the service goes on committing (the database may be away too; then it is left as it was)."""
        with contextlib.suppress(Exception):
            async with reading(self._pool(), wait=1.0) as raw:  # a figure: not worth waiting long for
                newest = await raw.fetchval("SELECT max(position) FROM outbox")
                done = await relayed(raw, self.name)
                metrics.outbox_behind.set(max((newest or 0) - (done or 0), 0))

    async def _lead(self) -> None:
        # A connection an error leaves is closed (`reading`), and with it the session's lock.
        async with reading(self._pool()) as raw:
            if not await raw.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                await self._pause(2.0)
                return
            # Only the relay holding the lock moves its position, so it is read once per lead, then kept.
            self._after = self._recorded = await relayed(raw, self.name)
            oldest = await raw.fetchval("SELECT min(position) FROM outbox")
            if oldest is not None and self._after < oldest - 1:
                # `outbox prune` keeps the record at every relay's position: one moved back past what was pruned
                # (or a relay that never published) finds a gap it will step over like one rolled back.
                log.warning(
                    "relay %s resumes at position %d, before the outbox's oldest record %d: the records between were "
                    "pruned (or never committed) and are not published again",
                    self.name,
                    self._after,
                    oldest,
                )
            self._gaps = Gaps()
            self._recorded_at = time.monotonic()
            self._read = True
            await raw.add_listener(CHANNEL, self._notified)
            self._leading = raw
            try:
                while not self._stop.is_set():
                    # Cleared before looking, not after: a batch committed while the outbox is read wakes the
                    # next round instead of being left for the idle timeout.
                    self._wake.clear()
                    async with self._busy:
                        published = await self._publish(raw)
                        if not published or time.monotonic() - self._recorded_at >= RECORD_EVERY:
                            await self._record(raw)
                    if self._read or self._handed:
                        if self._handed and not published:
                            # what it was handed waits behind a position another writer has not committed yet
                            await self._wait(GAP_WAIT)
                        continue  # more than a chunk had committed, or more was handed over meanwhile
                    recorded = self._after == self._recorded
                    if not await self._wait(self.idle_seconds if recorded else RECORD_EVERY) and recorded:
                        self._read = True  # the idle poll: whatever a missed notification left behind
            finally:
                async with self._busy:  # a flush may be using the connection
                    with contextlib.suppress(Exception):
                        await self._record(raw)
                    self._leading = None
                    self._after = self._recorded = None
                    self._handed.clear()
                    self._handed_rows = 0
                    with contextlib.suppress(Exception):
                        await raw.remove_listener(CHANNEL, self._notified)
                    try:
                        await raw.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK)
                    except Exception:
                        raw.terminate()  # not back to the pool holding the lock: its session ends, and the lock

    def _notified(self, _connection: Raw, _pid: int, _channel: str, payload: str) -> None:
        if payload != self.service.writer:  # its own service's batches are handed over
            self.wake()

    async def _publish(self, raw: Raw) -> int:
        """What it was handed, as long as each follows on from what it has published, all in one send (batches
        that committed while the one before was being sent are acknowledged together, in one round trip to the
        broker rather than one each); then, if need be, one chunk read from the outbox. The records it publishes."""
        assert self._after is not None  # it leads
        published = 0
        after, rows, committed = self._after, [], []
        while self._handed:
            handoff, handed_at = self._handed[0]
            if handoff.after > after or handoff.after < after < handoff.last:
                # records it was not handed lie before this batch, or the outbox was read up into it
                self._read = True
                break
            self._handed.popleft()
            self._handed_rows -= len(handoff.rows)
            if handoff.last <= after:
                continue  # published already, read from the outbox
            rows += handoff.rows
            committed.append(handed_at)
            after = handoff.last
        if rows:
            if _ended(raw):
                # Its session, and with it the relay lock, is gone: another relay may lead by now. A read of the
                # outbox would fail here too.
                raise ConnectionError("the relay's session to PostgreSQL has ended")
            sending = time.perf_counter()
            await self.producer.publish([(self.topics[stream], key, publishable(value)) for stream, key, value in rows])
            if self.metrics:
                acknowledged = time.perf_counter()
                self.metrics.stages.labels("published").observe(acknowledged - sending)
                for handed_at in committed:
                    self.metrics.stages.labels("relayed").observe(acknowledged - handed_at)
            self._after = after
            published += len(rows)
            self._count(stream for stream, _, _ in rows)
        if self._read:
            self._read = False
            read = await self._publish_read(raw)
            # a full chunk leaves more to read; so does a wake-up that came while it read
            self._read = self._read or read == self.chunk
            published += read
        if self.metrics and not self._read:
            self.metrics.outbox_behind.set(self._handed_rows)
        return published

    async def _publish_read(self, raw: Raw) -> int:
        """One chunk read from the outbox after its position, sent and acknowledged by the broker."""
        assert self._after is not None  # it leads
        rows = await pending(raw, self._after, self.chunk, self._gaps)
        if not rows:
            return 0
        await self.producer.publish([(self.topics[row.stream], row.key, publishable(row.value)) for row in rows])
        self._after = rows[-1].position
        self._count(row.stream for row in rows)
        if self.metrics and len(rows) == self.chunk:
            # Positions can skip (a rolled-back batch), so this is an upper bound; it costs one index probe.
            newest = await raw.fetchval("SELECT max(position) FROM outbox")
            self.metrics.outbox_behind.set(max((newest or 0) - rows[-1].position, 0))
        return len(rows)

    def _count(self, streams: Iterable[str]) -> None:
        if self.metrics:
            for stream, count in Counter(streams).items():
                self.metrics.relayed.labels(stream).inc(count)

    async def _record(self, raw: Raw) -> None:
        if self._after is not None and self._after != self._recorded:
            await record_relayed(raw, self.name, self._after)
            self._recorded = self._after
        self._recorded_at = time.monotonic()

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        await self._wait(seconds)

    async def _wait(self, seconds: float) -> bool:
        """Whether it was woken (rather than waited the time out)."""
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _ended(raw: Raw) -> bool:
    """Whether the connection's session is over: closed, or already handed back by the pool, which detaches a
    connection that closed (its methods then raise)."""
    try:
        return bool(raw.is_closed())
    except asyncpg.InterfaceError:
        return True
