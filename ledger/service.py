"""The durable ledger: ingest events into PostgreSQL, settle them, keep the projections, sweep parked events.

Each batch is one transaction under the append locks of its regions' streams (`ledger.streams`): the events,
their settlements, movements, incentives and rejections, the projections they move and the parking changes commit
together, or none of them does. What a batch published is handed to the caller only after it committed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from policies.parameters import parse_parameters
from policies.recorded import recorded_parameters
from policies.registry import PolicyRegistry

from .arrival import DEFAULT_MAX_CLOCK_SKEW, refuse_if_ahead
from .authority import Authority
from .batch import BatchRows
from .carry import Carry, Conflict, Mark, Watermark, spelled
from .chain import text_digest
from .db.connect import Pool, close_pool, service_pool
from .db.migrate import prepare
from .db.outbox import Handoff, handed_over
from .db.recorder import PostgresRecorder
from .db.server import Database
from .db.tracking import check
from .intake import Incoming
from .pipeline import YEAR_CLOSE, Parking, Pipeline, Sequencer, decoded, member_event
from .recorder import Claim, Collision, LedgerSession, Recorder, TopicPartition, Tracking
from .repeats import Repeats
from .streams import NO_REGION, Head

DEFAULT_PARK_TTL = timedelta(days=30)

OnPublished = Callable[[list[dict[str, Any]]], object]  # told each batch's published records once it committed


def batch_regions(items: list[Incoming]) -> list[str]:
    """The regions whose streams a batch may append to: those its events name (what an enrolment releases is of
    its own region)."""
    return list(dict.fromkeys(item.event.region for item in items if item.event is not None))


def locked_regions(items: list[Incoming], regions: list[str]) -> list[str]:
    """Whose append locks a batch takes: its regions', and, when it holds input that names no region, the lock of
    such input (`streams.NO_REGION`), under which a repeat of the same bytes is refused once."""
    return [*regions, NO_REGION] if any(item.event is None for item in items) else regions


def has_year_close(items: list[Incoming]) -> bool:
    """A year close walks its region's members in the ledger itself: it is settled with nothing in flight."""
    return any(item.event is not None and item.event.event_type == YEAR_CLOSE for item in items)


@dataclass
class Prepared:
    """A batch settled and not yet written: what to write, what it publishes, what the next batch reads through."""

    items: list[Incoming]
    stats: IngestStats
    rows: BatchRows
    published: list[dict]
    carried: Mark | None  # where the batch it was settled through left the ledger
    expected: Watermark | None  # where the ledger was when it was settled (None: where `carried` left it)
    carry: Carry
    tracking: Tracking | None = None
    handoff: Handoff | None = None  # once committed, its outbox records for this process's relay, if it wrote any
    regions: list[str] = field(default_factory=list)  # whose streams it appends to
    locked: list[str] = field(default_factory=list)  # whose append locks it commits under
    # its regions' heads and last arrivals as it was settled from (with `carried`: the rest of `expected`)
    heads: dict[str, Head] = field(default_factory=dict)
    arrivals: dict[str, int] = field(default_factory=dict)
    # the payload digests whose refusal (without a ledger position) it looked up, and how many of them it found
    # refused, with those of the batch carried from: its watermark's `refused`
    refusals: list[str] = field(default_factory=list)
    refused: int = 0

    def outcome(self) -> IngestStats:
        """Its stats once committed."""
        stats = IngestStats()
        stats.merge(self.stats)
        stats.add(self.published)
        return stats


@dataclass
class Unseen:
    """A batch's input without its repeats, and what that was told by: the payload digests whose refusal was looked
    up, those of them found refused (with the unreadable input the batch carried from refused), and the digests of
    the events found held (a parked one among them waits, and so is held, only while its bytes are not refused)."""

    fresh: list[Incoming]
    digests: list[str]
    refused: set[str]
    held: list[str]


@dataclass
class Committing:
    prepared: Prepared
    commit: asyncio.Task[None]


@dataclass
class IngestStats:
    read: int = 0
    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    parked: int = 0
    settlements: int = 0
    movements: int = 0
    expired: int = 0
    resettled: int = 0  # batches settled again because another writer appended between their reads and commit

    def merge(self, other: IngestStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def add(self, published: list[dict]) -> None:
        for record in published:
            if "settlement_id" in record:
                self.settlements += 1
            elif "movement_id" in record:
                self.movements += 1
            elif "rejected" in record:
                self.rejected += 1
            elif "parked" in record:
                self.parked += 1


class EarlierProjections(RuntimeError):
    """The projections hold member states an earlier release wrote (`codec.STATE_KEYS`): settling on them would
    differ from a replay, so nothing is settled until they are rebuilt from the ledger."""


REBUILD = "medledger projections rebuild"


async def require_current_projections(recorder: Recorder) -> None:
    """Refuse to start on member states of an earlier shape. Not rebuilt here: the service's role may not empty a
    projection (the maintenance role does, `medledger projections rebuild`), a rebuild of a large ledger is an
    operator's step of the upgrade, and two services starting at once must not both rebuild."""
    async with recorder.reading() as ledger:
        found = await ledger.earlier_shapes()
    if found:
        raise EarlierProjections(
            f"{found} member_state row(s) were written by an earlier release and lack what this one keeps "
            f"(such as each member's contributions by month); run `{REBUILD}` (it connects as the maintenance "
            "role), then start again"
        )


class LedgerService:
    def __init__(
        self,
        db: Database | None,
        parameters_text: str = "",
        parameters_source: str | None = None,
        batch_size: int = 2_000,
        park_ttl: timedelta = DEFAULT_PARK_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        prepare_schema: bool = True,
        authority: Authority | None = None,
        max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
        recorder: Recorder | None = None,
    ) -> None:
        """`authority`: the producers file; with it, every event must be signed by a producer allowed to send it
        (`ledger.authority`), or it is refused (`unauthorized`) and kept. Without it, events are taken as given:
        an operator's own file (`medledger ingest` without a producers file). `max_clock_skew`: how much later
        than its arrival (by `clock`) an event's `occurred_at` may lie before it is refused (`ledger.arrival`).
        `recorder`: where the ledger is kept (`ledger.recorder`), instead of the PostgreSQL database `db`."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_clock_skew < timedelta(0):
            raise ValueError(f"max_clock_skew must not be negative, got {max_clock_skew}")
        self.db = db
        # Every value in force, defaults included, is what the events are recorded under and settled with: a later
        # release that changes a default cannot change how a replay settles them (`policies.recorded`).
        self.parameters_text = recorded_parameters(parameters_text, parameters_source)
        self.digest = text_digest(self.parameters_text)
        self.registry = PolicyRegistry(parse_parameters(self.parameters_text, parameters_source))
        self.batch_size = batch_size
        self.park_ttl = park_ttl
        self.clock = clock
        self.pool: Pool | None = None
        self._recorder: Recorder | None = recorder
        self.prepare_schema = prepare_schema
        self.authority = authority
        self.max_clock_skew = max_clock_skew
        # Once an event committed under the parameter set, its row is there for good (the events refer to it).
        self._parameters_kept = False
        # Named to the relays once a batch it wrote committed.
        self.writer = uuid.uuid4().hex

    @property
    def recorder(self) -> Recorder:
        """Where the ledger is kept: the one given, or the PostgreSQL database's once the service is entered."""
        if self._recorder is None:
            raise RuntimeError("the ledger service is not open: use it as `async with LedgerService(...)`")
        return self._recorder

    async def __aenter__(self) -> LedgerService:
        if self.db is None:  # a recorder of its own
            await self._require_current_projections()
            return self
        if self.prepare_schema:
            prepare(self.db)
        self.pool = await service_pool(self.db, size=4)
        self._recorder = PostgresRecorder(self.pool)
        try:
            await self._require_current_projections()
        except BaseException:
            await close_pool(self.pool)
            raise
        return self

    async def _require_current_projections(self) -> None:
        await require_current_projections(self.recorder)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.pool is not None:
            await close_pool(self.pool)

    async def ingest(self, items: Iterable[Incoming], on_published: OnPublished | None = None) -> IngestStats:
        """Batch after batch, each settled while the one before it commits (`ledger.carry`)."""
        stats = IngestStats()
        await self.sweep(stats=stats, on_published=on_published)
        in_flight: Committing | None = None
        try:
            batch: list[Incoming] = []
            for item in items:
                batch.append(item)
                if len(batch) >= self.batch_size:
                    in_flight = await self._next(batch, in_flight, stats, on_published)
                    batch = []
            if batch:
                in_flight = await self._next(batch, in_flight, stats, on_published)
            await self._land(in_flight, stats, on_published)
            in_flight = None
        finally:
            if in_flight is not None:  # failing: what is still committing must not outlive the call
                await asyncio.gather(in_flight.commit, return_exceptions=True)
        return stats

    async def _next(
        self, batch: list[Incoming], in_flight: Committing | None, stats: IngestStats, on_published: OnPublished | None
    ) -> Committing | None:
        """Settle `batch` while the batch in flight commits, then wait for that commit and start this one's."""
        if has_year_close(batch):
            await self._land(in_flight, stats, on_published)
            self._admit(batch)
            await self._batch(batch, stats, on_published)
            return None
        try:
            prepared = await self.prepare(batch, in_flight.prepared.carry if in_flight else None)
        except BaseException:
            await self._land(in_flight, stats, on_published)  # what committed is reported before the failure
            raise
        if not await self._land(in_flight, stats, on_published):
            prepared = await self.prepare(batch, None)  # what it was settled on was settled again
        return Committing(prepared, asyncio.create_task(self.commit(prepared)))

    async def _land(self, in_flight: Committing | None, stats: IngestStats, on_published: OnPublished | None) -> bool:
        """Wait for the batch in flight to commit. On a conflict with another writer it is settled again from
        the ledger, and False says that what it carried is not to be read through."""
        if in_flight is None:
            return True
        prepared = in_flight.prepared
        try:
            await in_flight.commit
        except Conflict:
            stats.resettled += 1
            await self._batch(prepared.items, stats, on_published)
            return False
        stats.merge(prepared.outcome())
        if on_published is not None:
            on_published(prepared.published)
        return True

    async def prepare(self, items: list[Incoming], carry: Carry | None, tracking: Tracking | None = None) -> Prepared:
        """Read and settle a batch without the append lock, from the ledger and, with `carry`, through what the
        batch before it changed. Nothing is written: `commit` writes it (with the consumed offsets of `tracking`).
        A batch with a year close cannot be prepared (`has_year_close`).

        The reads are statements of their own, in no transaction: whatever another writer commits between them
        (or before the commit) moves the watermark, and the commit, under the append lock, keeps nothing unless
        the ledger is where the batch was settled from. A transaction would only add two round trips."""
        if has_year_close(items):
            raise ValueError("a year close is settled under the append lock (ingest_batch)")
        self._admit(items)
        stats = IngestStats()
        regions = batch_regions(items)
        async with self.recorder.reading() as ledger:
            projections = None
            if carry is None:
                # read before what the batch settles from, so that whatever is written meanwhile moves it
                projections = await ledger.projections_file()
                heads = await ledger.stream_heads(regions, make=True)
                since = await ledger.arrivals(regions)
            else:
                heads = {r: carry.mark.heads[r] for r in regions if r in carry.mark.heads}
                since = {r: carry.mark.arrivals[r] for r in regions if r in carry.mark.arrivals}
                if untouched := [r for r in regions if r not in heads]:  # regions the batches before did not touch
                    heads |= await ledger.stream_heads(untouched, make=True)
                    since |= await ledger.arrivals(untouched)
            sequencer = Sequencer(heads, self.digest, self.parameters_text)
            parking = Parking(ledger, self.clock(), since)
            unseen = await self._unseen(ledger, items, stats, carry, read_ahead=True)
            stats.read += len(items)
            written: list[BatchRows] = []

            async def keep(batch_rows: BatchRows, registry: PolicyRegistry) -> None:
                batch_rows.freeze(registry, self.digest)
                written.append(batch_rows)

            pipeline = Pipeline(
                ledger,
                self.registry,
                sequencer,
                keep,
                parking,
                keep_loaded=True,
                carry=carry,
                authority=self.authority,
            )
            await pipeline.run(unseen.fresh)
            book = pipeline.book
            if book is None:  # nothing new: the next batch reads through the ledger as it is (its closed years)
                book = carry.book if carry is not None else await ledger.load_book(self.registry, [])
        stats.appended += sequencer.appended
        rows = written[0] if written else BatchRows()
        appended = {event.event_id for event in rows.events}
        refused = {(row[1], row[6], row[2]) for row in rows.rejections if row[0] is None and row[1] is not None}
        parked: dict[tuple[str, str], list[Incoming]] = {}
        for item in parking.parked:
            event = member_event(item)
            if event.event_id not in appended:
                parked.setdefault((event.region, event.member_id), []).append(item)
        loaded = dict(rows.loaded)
        loaded.update((key, self.digest) for key in rows.touched)
        unreadable = {row[6] for row in rows.rejections if row[0] is None}
        # What the batch was settled on of the refusals without a position, which are of bytes, not of regions:
        # the repeats of refused input it looked up, and the parked events it read as still waiting (a refusal
        # of a held or revived event's bytes that was there already, from another source, makes it be settled
        # again: a cost, not a risk).
        refusals = sorted({*unseen.digests, *unseen.held, *parking.revived})
        found_refused = len(unseen.refused.intersection(refusals))
        expected = None
        if projections is not None:
            expected = Watermark(
                spelled({r: h.seq for r, h in heads.items()}), spelled(since), found_refused, projections
            )
        carried = carry.mark if carry is not None else None
        out = Carry(
            # with the regions of the batches before: what it reads through of them is checked at its commit
            mark=Mark(
                {**(carried.heads if carried else {}), **sequencer.heads},
                {**(carried.arrivals if carried else {}), **parking.arrivals},
            ),
            book=book,
            loaded=loaded,
            unreadable=unreadable,
            payloads={event.event_id: event.payload for event in rows.events}
            | {decoded(item).event_id: item.payload for item in parking.parked},
            gone=appended,
            refused=refused,
            parked=parked,
        )
        return Prepared(
            items,
            stats,
            rows,
            pipeline.published,
            carried,
            expected,
            out,
            tracking,
            regions=regions,
            locked=locked_regions(items, regions),
            heads={r: replace(h) for r, h in heads.items()},
            arrivals=since,
            refusals=refusals,
            refused=found_refused,
        )

    async def commit(self, prepared: Prepared) -> None:
        """Write a prepared batch under its regions' append locks, if the ledger is still where it was settled from. A
        small batch costs three round trips: BEGIN with the locks; every row as one statement, which also reads the
        watermark and the consumer's claims as they stood before it; COMMIT. A large batch copies its rows a table at a
        time (`db.writes`). The transaction rolls back, and this raises, when the claims are stale (`StaleClaim`,
        `OutOfSequence`) or the ledger moved since the batch was settled (`Conflict`); also when another writer's rows
        took the batch's numbers or ids, which is told apart from a defect by the claims and the watermark read
        again."""
        expected = prepared.expected
        if expected is None:
            assert prepared.carried is not None  # settled through the batch before, which left the ledger there
            expected = prepared.carried.end(prepared.heads, prepared.arrivals, prepared.refused)
        tracking = prepared.tracking
        rows = prepared.rows
        try:
            async with self.recorder.writing(self.writer, prepared.locked) as ledger:
                found, outbox = await self._write(ledger, rows, tracking, expected, prepared.regions, prepared.refusals)
        except Collision as error:
            claimed = None
            async with self.recorder.reading() as ledger:
                if tracking is not None and tracking.spans:
                    claimed = await ledger.claims_of(tracking)
                found = await ledger.watermark(prepared.regions, prepared.refusals)
            if tracking is not None and claimed is not None:
                check(tracking.claims, tracking.spans, claimed)  # a consumer that lost the partition is told so
            if found != expected:
                raise Conflict.moved(expected, found) from error
            if error.taken_id:
                # a writer of another region took one of the batch's event ids meanwhile: settled again, the id is
                # found held and the batch's event refused as a conflicting repeat
                raise Conflict(f"an event id of the batch was recorded meanwhile ({error})") from error
            raise
        # Under its regions' locks nothing else moved their streams: the ledger is where this batch leaves it.
        assert found is not None  # asked with `expected`, the write reads the watermark
        prepared.carry.mark.projections = found.projections
        if outbox is not None:
            prepared.handoff = handed_over(*outbox, rows.outbox)
        self._parameters_kept = self._parameters_kept or bool(rows.events)
        # Written: only its published records and what the next batch reads through are still needed (while the
        # next batch is settled, two batches are in memory at once).
        prepared.rows, prepared.items = BatchRows(), []

    async def _write(
        self,
        ledger: LedgerSession,
        rows: BatchRows,
        tracking: Tracking | None = None,
        expected: Watermark | None = None,
        regions: list[str] | None = None,
        refusals: list[str] | None = None,
    ) -> tuple[Watermark | None, tuple[int, int] | None]:
        """A batch's rows, inside its transaction under its regions' append locks (`LedgerSession.write_batch`),
        with the parameter set until one of the service's batches appended an event. With `expected`, the
        watermark of `regions` and of the refusals of the payload digests `refusals` is checked. Returns the
        watermark found (with `expected`), and the outbox position before its records and its last one, if it
        wrote any."""
        parameters = self.parameters_text if rows.events and not self._parameters_kept else None
        written = await ledger.write_batch(
            rows, self.registry, self.digest, parameters, tracking, expected, regions or [], refusals or []
        )
        return written.found, written.outbox

    async def keeps_signatures(self) -> bool:
        """Whether the ledger keeps producers' signatures (`db.signatures`): then unsigned input is not to be
        ingested, or `replay --verify` could no longer tell it from rows written around the intake."""
        async with self.recorder.reading() as ledger:
            return await ledger.keeps_signatures()

    async def claim(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        """Take partitions over for `consumer` (see `ledger.db.tracking`)."""
        return await self.recorder.claim(consumer, partitions)

    async def rebase(self, consumer: str, partition: TopicPartition, held: Claim, offset: int) -> Claim | None:
        """Move a stored offset back (see `ledger.db.tracking.rebase`)."""
        return await self.recorder.rebase(consumer, partition, held, offset)

    async def stored_offsets(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        return await self.recorder.stored_offsets(consumer, partitions)

    async def ingest_batch(
        self,
        items: list[Incoming],
        tracking: Tracking | None = None,
        on_published: OnPublished | None = None,
    ) -> IngestStats:
        """One batch as one transaction, with the consumed offsets when it came from the broker (`StaleClaim` if
        a partition was taken over meanwhile: then nothing of the batch is written)."""
        stats = IngestStats()
        self._admit(items)
        await self._batch(items, stats, on_published, tracking=tracking)
        return stats

    def _admit(self, items: list[Incoming]) -> None:
        """As the items arrive: with a producers file, what is not signed by a producer allowed to send it becomes
        refused input; so does an event dated later than its arrival, beyond the tolerated skew (`ledger.arrival`).
        Neither is appended: a replay, which reads only the ledger, settles the same without the clock."""
        now = self.clock()
        for item in items:
            if self.authority is not None:
                self.authority.admit(item, now)
            refuse_if_ahead(item, now, self.max_clock_skew)

    async def _batch(
        self,
        items: list[Incoming],
        stats: IngestStats,
        on_published: OnPublished | None,
        expired_before: datetime | None = None,
        tracking: Tracking | None = None,
        region: str | None = None,
    ) -> int:
        """One transaction under the append locks of its regions. With `expired_before`, the batch is `region`'s
        parked events that waited longer than that, selected under its lock so no other writer can release or
        refuse them too."""
        regions = [region] if region is not None else batch_regions(items)
        counted = IngestStats()  # what it published, counted as written when no one is to be handed it
        async with self.recorder.writing(self.writer, locked_regions(items, regions)) as ledger:
            if tracking is not None:
                await ledger.advance(tracking.consumer, tracking.claims, tracking.spans)
            sequencer = Sequencer(await ledger.stream_heads(regions, make=True), self.digest, self.parameters_text)
            parking = Parking(ledger, self.clock(), await ledger.arrivals(regions))
            if expired_before is not None and region is not None:
                items = await parking.expired(expired_before, self.batch_size, self.park_ttl, region)
                stats.expired += len(items)
                fresh = items
            else:
                fresh = (await self._unseen(ledger, items, stats)).fresh
            stats.read += len(items)

            async def write(batch_rows: BatchRows, registry: PolicyRegistry) -> None:
                await self._write(ledger, batch_rows)

            pipeline = Pipeline(
                ledger,
                self.registry,
                sequencer,
                write,
                parking,
                keep_loaded=True,
                authority=self.authority,
                tally=counted.add if on_published is None else None,
            )
            await pipeline.run(fresh)
            stats.appended += sequencer.appended
        self._parameters_kept = self._parameters_kept or sequencer.moved > 0
        stats.merge(counted)
        stats.add(pipeline.published)
        if on_published is not None:
            on_published(pipeline.published)
        return len(items)

    async def _unseen(
        self,
        ledger: LedgerSession,
        items: list[Incoming],
        stats: IngestStats,
        carry: Carry | None = None,
        read_ahead: bool = False,
    ) -> Unseen:
        """Drop repeats: an event already in the ledger or in the parking area, unreadable input already refused,
        or either earlier in this batch (or in the batch carried from). A repeat is acknowledged, never applied
        or recorded twice. A different event under an id already held is no repeat: it is refused
        (`ConflictingRepeat`), and the event held stays as it is. `read_ahead`: the batch is settled next, in one
        segment, from what `ledger` reads (`LedgerSession.held`)."""
        repeats = Repeats()
        events = [item.event for item in items if item.event is not None]
        ids = [event.event_id for event in events]
        if carry is not None:  # what the batch before appended or parked, which it may not have committed yet
            repeats.hold_recorded((i, carry.payloads[i]) for i in ids if i in carry.payloads)
        # read ahead for what is not a repeat of the batch before (what else repeats is known only from this read)
        ahead = [e for e in events if carry is None or e.event_id not in carry.payloads] if read_ahead else []
        held = await ledger.held(ids, ahead, carry) if ids else []
        repeats.hold_recorded(held)
        # Unreadable input refused before is a repeat; so is an event refused before as a conflicting repeat (any
        # event whose id is held, or given twice here, may turn out one).
        given = Counter(ids)
        digests = [
            text_digest(item.raw)
            for item in items
            if item.event is None or item.event.event_id in repeats.recorded or given[item.event.event_id] > 1
        ]
        if digests:
            repeats.refused |= await ledger.refused(digests)
        if carry is not None:
            repeats.refused |= carry.unreadable
        refused = set(repeats.refused)  # as looked up: telling repeats apart adds to it
        fresh = []
        for item in items:
            if repeats.is_repeat(item):
                stats.duplicates += 1
            else:
                fresh.append(item)
        # held: what the ledger holds, and what the batch before parked (a parked event is held only while its
        # bytes are not refused, whether read from the ledger or through the carry)
        parked = [carry.payloads[i] for i in ids if i in carry.payloads and i not in carry.gone] if carry else []
        return Unseen(fresh, digests, refused, [text_digest(payload) for payload in (*(p for _, p in held), *parked)])

    async def sweep(
        self, now: datetime | None = None, stats: IngestStats | None = None, on_published: OnPublished | None = None
    ) -> IngestStats:
        """Refuse parked events older than the parking time: appended to the ledger and rejected with the
        reason, so nothing is lost."""
        stats = stats or IngestStats()
        cutoff = (now or self.clock()) - self.park_ttl
        async with self.recorder.reading() as ledger:
            regions = await ledger.expired_regions(cutoff)
        for region in regions:  # each under its own lock
            while await self._batch([], stats, on_published, expired_before=cutoff, region=region):
                pass
        return stats
