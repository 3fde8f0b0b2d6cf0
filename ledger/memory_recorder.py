"""The memory recorder (`ledger.recorder`): the ledger's rows kept in this process, for the pipeline's tests and for
settling a file without a database.

It keeps what the PostgreSQL recorder keeps, row for row, and answers the same reads: the events and their chain,
the parameter sets, settlements, movements, incentives, refusals, parked events, signatures, the projections, the
outbox and the consumer offsets. Each region has its stream (`ledger.streams`), numbered and chained as the
database numbers and chains it (anchored to an empty history). A session opened for writing holds the append locks
of its regions (writers of other regions go on) and journals what it changes, so that a batch that fails leaves
nothing behind, as a rolled-back transaction does. A reading session sees what a writer has written so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from policies.book import Book
from policies.member import MemberState
from policies.registry import PolicyRegistry

from .adoption import ADOPTED
from .batch import BatchRows
from .carry import Carry, Conflict, Watermark, spelled
from .chain import GENESIS, text_digest
from .codec import STATE_KEYS, settlement_from_row, state_from_json
from .contract import EventBase
from .db.projection_store import book_keys, carried_members, keep_member
from .db.tracking import check
from .recorder import Claim, Collision, TopicPartition, Tracking, Written
from .store import StoredEvent
from .streams import FIRST_OTHER, HISTORY_REGION, Head, base, genesis, lock_order, stream_number, stream_of

_MISSING = object()


@dataclass
class Tables:
    """The ledger's rows, keyed as the database keys them."""

    events: list[StoredEvent] = field(default_factory=list)  # in the order written
    event_index: dict[str, int] = field(default_factory=dict)  # event_id -> position in `events`
    seq_index: dict[int, int] = field(default_factory=dict)  # seq -> position in `events`
    streams: dict[str, int] = field(default_factory=dict)  # region -> its stream number
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # region -> (seq, hash) of its last event
    parameters: dict[str, str] = field(default_factory=dict)
    settlements: dict[str, tuple] = field(default_factory=dict)  # settlement_id -> row (SETTLEMENT_COLUMNS)
    visits: dict[tuple[str, str], str] = field(default_factory=dict)  # (region, visit_id) -> its settlement_id
    reversed: dict[str, str] = field(default_factory=dict)  # settlement_id reversed -> the reversal's
    movements: dict[str, tuple] = field(default_factory=dict)  # movement_id -> row
    incentives: list[tuple] = field(default_factory=list)
    rejections: list[tuple] = field(default_factory=list)  # (rejection_id, *REJECTION_COLUMNS)
    parked: list[tuple] = field(default_factory=list)  # PARKED_COLUMNS, in arrival order
    signatures: dict[str, tuple] = field(default_factory=dict)  # event_id -> row
    member_state: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)  # -> (state JSON, last_seq)
    member_year: dict[tuple[str, str, int], tuple] = field(default_factory=dict)
    fund_totals: dict[tuple, tuple] = field(default_factory=dict)  # (region, month, pool) -> (paid, count, count)
    closed_years: dict[tuple[str, int], int] = field(default_factory=dict)  # -> seq
    payments: dict[tuple[str, str], int] = field(default_factory=dict)  # (region, payment_id) -> seq
    outbox: list[tuple] = field(default_factory=list)  # (stream, key, JSON); position = index + 1
    offsets: dict[tuple[str, str, int], Claim] = field(default_factory=dict)  # (consumer, topic, partition)
    # Indexes, so that no read walks a whole table
    adopted: dict[str | None, str] = field(default_factory=dict)  # region (None: any) -> the digest adopted last
    arrivals: dict[str, int] = field(default_factory=dict)  # region -> the arrival of the event parked last there
    parked_for: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # member -> positions in `parked`
    parked_as: dict[str, list[int]] = field(default_factory=dict)  # event_id -> positions in `parked`
    refusals: dict[tuple, bool] = field(default_factory=dict)  # (event_id, payload digest, source) refused unsequenced
    refused_digests: dict[str, bool] = field(default_factory=dict)  # payload digests refused unsequenced

    def reindex(self) -> None:
        """The positions of events and parked rows again, once rows were taken out of the middle of their lists."""
        self.event_index = {event.event_id: at for at, event in enumerate(self.events)}
        self.seq_index = {event.seq: at for at, event in enumerate(self.events)}
        self.parked_for, self.parked_as = {}, {}
        for at, row in enumerate(self.parked):
            self.parked_for.setdefault((row[1], row[2]), []).append(at)
            self.parked_as.setdefault(row[0], []).append(at)


class Journal:
    """What a writing session changed, to undo it all if the batch fails. Writers of other regions may append to
    the same lists meanwhile: undone, its own rows are taken out wherever they are, and the positions indexed
    again."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.appended: list[tuple[list, object]] = []
        self.entries: list[tuple[dict, object, object]] = []

    def append(self, rows: list, row: object) -> None:
        rows.append(row)
        self.appended.append((rows, row))

    def extend(self, rows: list, more: Iterable) -> None:
        for row in more:
            self.append(rows, row)

    def put(self, table: dict, key: object, value: object) -> None:
        self.entries.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    def add_to(self, table: dict, key: object, value: object) -> None:
        """Append `value` to the list `table` holds at `key`."""
        if key not in table:
            self.put(table, key, [])
        self.append(table[key], value)

    def drop(self, table: dict, key: object) -> None:
        if key in table:
            self.entries.append((table, key, table.pop(key)))

    def undo(self) -> None:
        for table, key, before in reversed(self.entries):
            if before is _MISSING:
                table.pop(key, None)
            else:
                table[key] = before
        for rows, row in reversed(self.appended):
            at = next(at for at in range(len(rows) - 1, -1, -1) if rows[at] is row)
            del rows[at]
        if self.appended:
            self.tables.reindex()


class MemorySession:
    """A session of the memory recorder (`recorder.LedgerSession`)."""

    def __init__(self, tables: Tables, journal: Journal | None = None):
        self.t, self.journal = tables, journal

    # what settling reads

    async def load_book(
        self,
        registry: PolicyRegistry,
        events: Iterable[EventBase],
        loaded: dict[tuple[str, str], str | None] | None = None,
        carry: Carry | None = None,
    ) -> Book:
        t = self.t
        book = Book(registry)
        events = list(events)
        if carry is None:
            book.closed_years.update(t.closed_years)
        visit_keys, payment_keys, member_keys = book_keys(book, events, carry)
        carried_members(book, member_keys, carry, loaded)
        for key in visit_keys:
            settlement_id = t.visits.get(key)
            if settlement_id is not None:
                row = t.settlements[settlement_id]
                settlement = settlement_from_row(orjson.loads(row[11]), orjson.loads(row[12]), row[2])
                book.visits[key] = settlement
                if settlement.settlement_id in t.reversed:
                    book.reversed_visits.add(key)
        self._members(book, member_keys, loaded)
        book.payments |= {key for key in payment_keys if key in t.payments}
        payers = {(s.region, s.payer_id) for s in book.visits.values() if s.payer_id} - member_keys
        carried_members(book, payers, carry, loaded)
        self._members(book, payers, loaded)
        return book

    def _members(self, book: Book, keys: Iterable[tuple[str, str]], loaded: dict | None) -> None:
        for key in keys:
            if key in book.members or key not in self.t.member_state:
                continue
            state, last_seq = self.t.member_state[key]
            digest = self._event_at(last_seq).params_digest if loaded is not None else None
            keep_member(book, state, digest, loaded)

    def _event_at(self, seq: int) -> StoredEvent:
        return self.t.events[self.t.seq_index[seq]]

    async def region_members(self, region: str, size: int) -> AsyncIterator[list[MemberState]]:
        ids = sorted(member_id for r, member_id in self.t.member_state if r == region)
        states = self.t.member_state
        for start in range(0, len(ids), size):
            yield [state_from_json(orjson.loads(states[(region, i)][0])) for i in ids[start : start + size]]

    def _waiting(self, row: tuple, in_ledger: bool = True) -> bool:
        """Of a parked row: not in the ledger in its own region (with `in_ledger`), and its own bytes not refused
        (`db.parking.WAITING`)."""
        event_id, region, _, payload, source = row[:5]
        if (
            in_ledger
            and event_id in self.t.event_index
            and self.t.events[self.t.event_index[event_id]].region == region
        ):
            return False
        return (event_id, text_digest(payload), source or f"parked:{event_id}") not in self.t.refusals

    async def waiting_for(self, keys: Iterable[tuple[str, str]]) -> list[tuple]:
        positions = sorted(at for key in set(keys) for at in self.t.parked_for.get(key, ()))
        rows = (self.t.parked[at] for at in positions)  # in arrival order
        return [(row[1], row[2], row[3], row[4], row[0]) for row in rows if self._waiting(row)]

    async def expired_parked(self, cutoff: datetime, limit: int, region: str) -> list[tuple]:
        found = [
            (row[0], row[3], row[4], row[5])
            for row in self.t.parked
            if row[1] == region and row[5] < cutoff and self._waiting(row)
        ]
        return found[:limit]

    async def expired_regions(self, cutoff: datetime) -> list[str]:
        return sorted({row[1] for row in self.t.parked if row[5] < cutoff and self._waiting(row)})

    async def visit_facilities(self, event_ids: list[str]) -> dict[str, str | None]:
        found = {}
        for event_id in event_ids:
            if event_id in self.t.event_index:
                facility = orjson.loads(self.t.events[self.t.event_index[event_id]].payload).get("facility_id")
                found[event_id] = None if facility is None else str(facility)
        return found

    # what the service reads

    async def stream_heads(self, regions: Iterable[str] | None = None, make: bool = False) -> dict[str, Head]:
        t = self.t
        wanted = sorted(t.streams) if regions is None else list(dict.fromkeys(regions))
        if make:
            for region in sorted(wanted):  # in the order the database makes them (`db.streams.make_streams`)
                if region not in t.streams and region != HISTORY_REGION:
                    self._make_stream(region)
        heads = {}
        for region in sorted(r for r in wanted if r in t.streams):
            stream = t.streams[region]
            seq, hash_ = t.heads.get(region, (base(stream), genesis(region, 0, GENESIS)))
            heads[region] = Head(region, stream, seq, hash_, t.adopted.get(region))
        return heads

    def _make_stream(self, region: str) -> None:
        """The region's stream, numbered as the database numbers it (`streams.stream_number`, else the next from
        FIRST_OTHER): kept even if the batch that needed it writes nothing, as the database keeps it."""
        number = stream_number(region)
        if number is None:
            others = [n for n in self.t.streams.values() if n >= FIRST_OTHER]
            number = max(others, default=FIRST_OTHER - 1) + 1
        self.t.streams[region] = number

    async def arrivals(self, regions: Iterable[str]) -> dict[str, int]:
        return {region: self.t.arrivals.get(region, 0) for region in sorted(set(regions))}

    async def projections_file(self) -> int:
        return 1  # the projections are never rebuilt in place here

    async def watermark(self, regions: Iterable[str], digests: Iterable[str] = ()) -> Watermark:
        wanted = sorted(set(regions))
        heads = await self.stream_heads(wanted)
        refused = len(await self.refused(list(set(digests))))
        return Watermark(
            spelled({r: h.seq for r, h in heads.items()}),
            spelled(await self.arrivals(wanted)),
            refused,
            await self.projections_file(),
        )

    async def last_adopted(self, region: str | None = None) -> str | None:
        return self.t.adopted.get(region)

    async def held(
        self, event_ids: list[str], ahead_of: Sequence[EventBase] = (), carry: Carry | None = None
    ) -> list[tuple[str, str]]:
        t = self.t
        found = [(i, t.events[t.event_index[i]].payload) for i in event_ids if i in t.event_index]
        parked = (t.parked[at] for i in dict.fromkeys(event_ids) for at in t.parked_as.get(i, ()))
        return found + [(row[0], row[3]) for row in parked if self._waiting(row, in_ledger=False)]

    async def refused(self, digests: list[str]) -> set[str]:
        return {digest for digest in digests if digest in self.t.refused_digests}

    async def keeps_signatures(self) -> bool:
        return bool(self.t.signatures)

    async def earlier_shapes(self) -> int:
        return sum(1 for state, _ in self.t.member_state.values() if not set(STATE_KEYS) <= orjson.loads(state).keys())

    async def claims_of(self, tracking: Tracking) -> list[tuple]:
        return [
            (topic, partition, claim.epoch, claim.next_offset)
            for (topic, partition) in sorted(tracking.spans)
            if (claim := self.t.offsets.get((tracking.consumer, topic, partition))) is not None
        ]

    # what a batch writes

    async def write_batch(
        self,
        rows: BatchRows,
        registry: PolicyRegistry,
        digest: str,
        parameters: str | None = None,
        tracking: Tracking | None = None,
        expected: Watermark | None = None,
        regions: Iterable[str] = (),
        refusals: Iterable[str] = (),
    ) -> Written:
        journal = self._writer()
        found = None
        if expected is not None:
            found = await self.watermark(regions, refusals)
            if tracking is not None and tracking.spans:
                check(tracking.claims, tracking.spans, await self.claims_of(tracking))
            if found != expected:
                raise Conflict.moved(expected, found)
        self._refuse_collisions(rows)
        t = self.t
        if parameters is not None and digest not in t.parameters:
            journal.put(t.parameters, digest, parameters)
        streams = {number: region for region, number in t.streams.items()}
        for event in rows.events:
            journal.put(t.event_index, event.event_id, len(t.events))
            journal.put(t.seq_index, event.seq, len(t.events))
            journal.append(t.events, event)
            journal.put(t.heads, streams[stream_of(event.seq)], (event.seq, event.hash))
            if event.event_type == ADOPTED:
                journal.put(t.adopted, None, event.params_digest)
                journal.put(t.adopted, event.region, event.params_digest)
        for row in rows.settlements:
            journal.put(t.settlements, row[0], row)
            if row[10] is None:
                journal.put(t.visits, (row[3], row[5]), row[0])
            else:
                journal.put(t.reversed, row[10], row[0])
        for row in rows.movements:
            journal.put(t.movements, row[0], row)
        journal.extend(t.incentives, rows.incentives)
        for row in rows.parked:
            journal.add_to(t.parked_for, (row[1], row[2]), len(t.parked))
            journal.add_to(t.parked_as, row[0], len(t.parked))
            journal.append(t.parked, row)
            journal.put(t.arrivals, row[1], row[6])
        for row in rows.signatures:
            journal.put(t.signatures, row[0], row)
        for row in rows.rejections:
            journal.append(t.rejections, ((t.rejections[-1][0] if t.rejections else 0) + 1, *row))
            seq, event_id, source, _, _, _, digest, *_ = row
            if seq is None:
                journal.put(t.refused_digests, digest, True)
                journal.put(t.refusals, (event_id, digest, source), True)
        self._projections(journal, rows, registry, digest)
        outbox = None
        if rows.outbox:
            outbox = (len(t.outbox), len(t.outbox) + len(rows.outbox))
            journal.extend(t.outbox, rows.outbox)
        if tracking is not None and tracking.spans and expected is not None:
            self._move_offsets(journal, tracking)
        return Written(found, outbox)

    def _writer(self) -> Journal:
        if self.journal is None:
            raise RuntimeError("a reading session writes nothing")
        return self.journal

    def _refuse_collisions(self, rows: BatchRows) -> None:
        """What the database's keys refuse: an event id or position taken, a settlement or movement id twice."""
        t = self.t
        ids = [event.event_id for event in rows.events]
        taken = {i for i in ids if i in t.event_index} | {i for i in ids if ids.count(i) > 1}
        if taken:
            raise Collision(f"event ids already recorded: {sorted(taken)}", taken_id=True)
        streams = {number: region for region, number in t.streams.items()}
        for event in rows.events:
            region = streams.get(stream_of(event.seq))
            if region is None or event.seq in t.seq_index or event.seq <= t.heads.get(region, (0, b""))[0]:
                raise Collision(f"position {event.seq} already recorded, or in no region's stream")
        settled = [row[0] for row in rows.settlements]
        if {s for s in settled if s in t.settlements or settled.count(s) > 1}:
            raise Collision("a settlement id already recorded")
        moved = [row[0] for row in rows.movements]
        if {m for m in moved if m in t.movements or moved.count(m) > 1}:
            raise Collision("a movement id already recorded")

    def _projections(self, journal: Journal, rows: BatchRows, registry: PolicyRegistry, digest: str) -> None:
        t = self.t
        for region, member_id, state, last_seq in rows.state_rows():
            journal.put(t.member_state, (region, member_id), (state, last_seq))
        whole_rows, year_rows, whole = rows.year_rows(registry, digest)
        whole_members = set(whole)
        for key in [key for key in t.member_year if key[:2] in whole_members]:
            journal.drop(t.member_year, key)
        for row in whole_rows + year_rows:
            journal.put(t.member_year, tuple(row[:3]), tuple(row))
        for region, month, pool, paid, settled, reversed_ in rows.fund.rows():
            before = t.fund_totals.get((region, month, pool), (0, 0, 0))
            journal.put(
                t.fund_totals,
                (region, month, pool),
                (before[0] + paid, before[1] + settled, before[2] + reversed_),
            )
        for region, year, seq in rows.closed_years:
            journal.put(t.closed_years, (region, year), seq)
        for region, payment_id, seq in rows.payments:
            journal.put(t.payments, (region, payment_id), seq)

    def _move_offsets(self, journal: Journal, tracking: Tracking) -> None:
        for (topic, partition), (_, end) in tracking.spans.items():
            key = (tracking.consumer, topic, partition)
            journal.put(self.t.offsets, key, Claim(self.t.offsets[key].epoch, end))

    async def advance(
        self,
        consumer: str,
        claims: Mapping[TopicPartition, Claim],
        spans: Mapping[TopicPartition, tuple[int, int]],
    ) -> None:
        if not spans:
            return
        tracking = Tracking(consumer, dict(claims), dict(spans))
        check(tracking.claims, tracking.spans, await self.claims_of(tracking))
        self._move_offsets(self._writer(), tracking)


class MemoryRecorder:
    """A ledger kept in this process (`recorder.Recorder`)."""

    def __init__(self) -> None:
        self.tables = Tables()
        self._locks: dict[int, asyncio.Lock] = {}  # the append lock of each region (`streams.lock_key`)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[MemorySession]:
        yield MemorySession(self.tables)

    @asynccontextmanager
    async def writing(self, writer: str, regions: Iterable[str]) -> AsyncIterator[MemorySession]:
        async with AsyncExitStack() as held:
            for key in lock_order(regions):  # in the order the database takes them
                await held.enter_async_context(self._locks.setdefault(key, asyncio.Lock()))
            journal = Journal(self.tables)
            try:
                yield MemorySession(self.tables, journal)
            except BaseException:
                journal.undo()
                raise

    async def claim(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        claims = {}
        for topic, partition in sorted(partitions):
            key = (consumer, topic, partition)
            held = self.tables.offsets.get(key)
            claimed = Claim(1, None) if held is None else Claim(held.epoch + 1, held.next_offset)
            self.tables.offsets[key] = claims[(topic, partition)] = claimed
        return claims

    async def rebase(self, consumer: str, partition: TopicPartition, held: Claim, offset: int) -> Claim | None:
        key = (consumer, *partition)
        # as the database compares: a claim that consumed nothing yet (no offset) is never where it stood
        if held.next_offset is None or self.tables.offsets.get(key) != held:
            return None
        moved = self.tables.offsets[key] = Claim(held.epoch, offset)
        return moved

    async def stored_offsets(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        wanted = set(partitions)
        return {(t, p): claim for (c, t, p), claim in self.tables.offsets.items() if c == consumer and (t, p) in wanted}

    async def close(self) -> None:
        pass
