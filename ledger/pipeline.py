"""One batch of events through the engine, the same way for live ingest and for replay.

Live, a batch runs in one transaction under the append lock: events get their sequence and hash as they are
applied, a visit or account event for a member not yet enrolled is parked instead, an enrolment releases what
waited for it, and the ledger rows and projections are written before commit. Replay walks events already in
the ledger with their recorded sequences, writing projections into fresh tables.

A year close touches every member of the region, so it is its own segment: what came before it is written
first, then the region's members are evaluated a chunk at a time.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from policies.book import Book
from policies.engine import Engine
from policies.registry import PolicyRegistry
from policies.rejection import Rejected
from policies.year_close import evaluate, finish_close, open_close

from .adoption import adoption
from .authority import Authority
from .batch import BatchRows
from .carry import Carry
from .chain import text_digest
from .contract import MEMBER_EVENT_TYPES, EventBase, InvalidEvent
from .contract.envelope import MemberEvent
from .contract.period import YearClosed
from .intake import PARKABLE, Incoming, conflicting, decode_canonical
from .ownership import VisitOwners
from .recorder import SettlingReads
from .store import NewEvent, chain_onto, chained
from .streams import Head

YEAR_CLOSE = "period.year_closed"
CLOSE_CHUNK = 2_000
# Settling gives way this often to the batch committing meanwhile, whose every statement waits for a turn of the
# event loop: a small batch that settled without a break would hold the commit before it back by its whole time.
YIELD_EVERY = 8

# Where a segment's rows go once settled: written (live), kept until commit (prepared), compared (replay), or
# nowhere (`settle`, whose rows keep only what is published: `ledger.offline`).
Write = Callable[[BatchRows, PolicyRegistry], Awaitable[None]]
# Where a segment's rows are collected (`BatchRows`, of the members named when a year close is chunked).
RowsFor = Callable[[frozenset[str] | None], BatchRows]


class Positions(Protocol):
    def next(self, item: Incoming, rows: BatchRows) -> int:
        """The ledger position `item` is settled at."""


def decoded(item: Incoming) -> EventBase:
    """The event of input that decoded: the only input settled, parked or sequenced."""
    assert item.event is not None, f"{item.source}: input that never became an event has no ledger position"
    return item.event


def member_event(item: Incoming) -> MemberEvent:
    """The event of decoded input outside a year close: every other event is about one member."""
    event = decoded(item)
    # asked of its type, not its class: the event may be the fast decoder's Struct of it, which reads alike
    assert event.event_type in MEMBER_EVENT_TYPES, f"{item.source}: {event.event_type} names no member"
    return cast(MemberEvent, event)


def member_key(item: Incoming) -> tuple[str, str]:
    """The member the event of `item` is about (outside a year close: `member_event`)."""
    event = member_event(item)
    return event.region, event.member_id


class Sequencer:
    """Hands out ledger positions in each region's stream (`ledger.streams`): the next sequence and hash (live),
    or the recorded ones (replay). Before the first event a stream sequences under a parameter set other than the
    one it adopted last, it appends that set's adoption to the stream (`ledger.adoption`)."""

    def __init__(self, heads: dict[str, Head], params_digest: str, parameters: str):
        """`heads`: where the stream of each region the batch may append to stands."""
        self.heads = {region: replace(head) for region, head in heads.items()}
        self.start = {region: head.seq for region, head in heads.items()}
        self.params_digest, self.parameters = params_digest, parameters
        self.adoptions = 0  # appended by this sequencer

    @property
    def moved(self) -> int:
        """Rows appended, adoptions among them."""
        return sum(head.seq - self.start[region] for region, head in self.heads.items())

    @property
    def appended(self) -> int:
        """Events appended, adoptions aside."""
        return self.moved - self.adoptions

    def next(self, item: Incoming, rows: BatchRows) -> int:
        event = decoded(item)
        head = self.heads[event.region]
        if head.adopted != self.params_digest:
            # Dated as the event it is adopted for, so the ledger's rows follow from its input alone.
            at = head.seq + 1
            self._append(head, adoption(at, self.params_digest, self.parameters, event.occurred_at, head.region), rows)
            head.adopted = self.params_digest
            self.adoptions += 1
        stored = chain_onto(
            head.seq + 1,
            head.hash,
            event.event_id,
            event.event_type,
            event.region,
            getattr(event, "member_id", None),
            event.occurred_at,
            item.payload,
            self.params_digest,
            item.source,
        )
        rows.events.append(stored)
        head.seq, head.hash = stored.seq, stored.hash
        return stored.seq

    @staticmethod
    def _append(head: Head, event: NewEvent, rows: BatchRows) -> None:
        (stored,) = chained([event], head.seq, head.hash)
        rows.events.append(stored)
        head.seq, head.hash = stored.seq, stored.hash


def fresh_rows(members_only: frozenset[str] | None = None) -> BatchRows:
    return BatchRows(members_only=members_only)


def unpublished_rows(members_only: frozenset[str] | None = None) -> BatchRows:
    """Rows of a batch nothing of which leaves medledger (a replay): no records are built for the topics."""
    return BatchRows(members_only=members_only, publish=False)


def run_to_end(settling: Coroutine[Any, Any, None]) -> None:
    """Run settling that reads nothing it has to wait for (`ledger.offline`) to its end, without an event loop: it
    only gives way now and then (`YIELD_EVERY`), and goes on at once."""
    while True:
        try:
            waited = settling.send(None)
        except StopIteration:
            return
        if waited is not None:
            settling.close()
            raise RuntimeError(f"settling waited for {waited!r}, which nothing here will complete")


class Recorded:
    """Replay: the sequence each event already has."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}

    def next(self, item: Incoming, rows: BatchRows) -> int:
        return self.positions[decoded(item).event_id]


def split_segments(items: Sequence[Incoming]) -> list[list[Incoming]]:
    segments: list[list[Incoming]] = [[]]
    for item in items:
        if item.event is not None and item.event.event_type == YEAR_CLOSE:
            segments.append([item])
            segments.append([])
        else:
            segments[-1].append(item)
    return [segment for segment in segments if segment]


def unreadable(rows: BatchRows, item: Incoming, error: InvalidEvent | None = None) -> None:
    """Input that never became an event (or, with `error`, an event refused as its producer's to send only now,
    as the batch stands): refused and kept, with no ledger position."""
    error = error or item.error
    assert error is not None, f"{item.source}: refused as unreadable with no reason"
    rows.reject(
        None,
        error.event_id,
        item.source,
        error.reason,
        error.detail,
        item.raw,
        shown_id=error.event_id or item.position,
    )


def policy_in_force(book: Book, event: EventBase) -> str | None:
    try:
        return book.policies.on(event.region, event.business_date).policy_id
    except Rejected:
        return None


def apply_one(engine: Engine, rows: BatchRows, seq: int, item: Incoming) -> bool:
    event = item.event
    assert event is not None, f"{item.source}: input that never became an event is not settled"
    book = engine.book
    try:
        outputs = engine.apply(event, seq)
    except Rejected as rejection:
        detail = f"{item.expired}; {rejection.detail}" if item.expired else rejection.detail
        rows.reject(
            seq,
            event.event_id,
            item.source,
            rejection.reason,
            detail,
            item.payload,
            policy_id=policy_in_force(book, event),
            region=event.region,
        )
        return False
    rows.accept(seq, event, outputs, book)
    return True


class Pipeline:
    """Runs segments of a batch against what `ledger` holds, writing through `write`."""

    def __init__(
        self,
        ledger: SettlingReads,
        registry: PolicyRegistry,
        sequencer: Positions,
        write: Write,
        parking: Parking | None = None,
        keep_loaded: bool = False,
        carry: Carry | None = None,
        authority: Authority | None = None,
        rows_for: RowsFor = fresh_rows,
        tally: Callable[[list[dict[str, Any]]], object] | None = None,
    ) -> None:
        """`parking`: where an event for a member not enrolled yet waits; without it, such an event is settled
        (and refused by the rules) as it comes. `keep_loaded`: the batch rows keep the parameters each member was
        loaded under (to write only the member_year rows that changed). `carry`: what the batch before changed, read
        through while it commits. `authority`: the producers file the batch was admitted under; a reversal by a
        producer restricted to facilities is then applied only to a visit settled at one of them
        (`ledger.ownership`). `rows_for`: where each segment's rows are collected (`unpublished_rows` when nothing the
        batches settle leaves medledger, a replay's). `tally`: where each segment's published records go once
        written, instead of into `published`, when nothing is to be handed them: a year close publishes a record of
        every member of its region given a bonus, and holding those until the commit took memory that grows with the
        region."""
        self.ledger, self.registry = ledger, registry
        self.tally = tally
        self.sequencer, self.write, self.parking = sequencer, write, parking
        self.rows_for = rows_for
        self.keep_loaded, self.carry = keep_loaded, carry
        self.owners = VisitOwners(authority, carry) if authority is not None else None
        self.book: Book | None = None  # the last segment's, as it left it
        self.published: list[dict[str, Any]] = []

    def _published(self, rows: BatchRows) -> None:
        if self.tally is None:
            self.published.extend(rows.published)
        else:
            self.tally(rows.published)

    async def run(self, items: Sequence[Incoming]) -> None:
        for segment in split_segments(items):
            first = segment[0].event
            if first is not None and first.event_type == YEAR_CLOSE:
                await self._close_year(segment[0])
            else:
                await self._segment(segment)

    async def _segment(self, items: list[Incoming]) -> None:
        registry = self.registry
        events = [item.event for item in items if item.event is not None]
        waiting = await self.parking.waiting_for(events, self.carry) if self.parking else {}
        extra = [i.event for queue in waiting.values() for i in queue if i.event is not None]
        rows = self.rows_for(None)
        loaded = rows.loaded if self.keep_loaded else None
        book = self.book = await self.ledger.load_book(registry, events + extra, loaded, self.carry)
        if self.owners is not None:
            await self.owners.load(self.ledger, [*items, *(i for queue in waiting.values() for i in queue)], book)
        engine = Engine(book=book)
        owners, parking, sequencer = self.owners, self.parking, self.sequencer
        for count, item in enumerate(items, start=1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let a batch that is committing meanwhile send its next statement
            rows.settling(item)
            if item.error is not None:
                unreadable(rows, item)
                continue
            if owners is not None and (problem := owners.problem(item, book)) is not None:
                unreadable(rows, item, Authority.refusal(item, problem))
                continue
            if item.signed is not None:  # kept as it arrived; what the enrolment releases was kept when parked
                rows.keep_signature(item)
            if parking is not None and parking.should_park(item, book):
                parking.park(item, rows)
                waiting.setdefault(member_key(item), []).append(item)
                continue
            accepted = apply_one(engine, rows, sequencer.next(item, rows), item)
            if (
                accepted
                and waiting
                and decoded(item).event_type == "member.enrolled"
                and waiting.get(key := member_key(item))
            ):
                # What waited for this enrolment, in the order it arrived; once in the ledger it waits no more.
                for queued in waiting.pop(key):
                    if queued.error is not None:  # parked bytes this version no longer reads
                        unreadable(rows, queued)
                    else:
                        apply_one(engine, rows, sequencer.next(queued, rows), queued)
        await self.write(rows, registry)
        self._published(rows)

    async def _close_year(self, item: Incoming) -> None:
        registry = self.registry
        event = cast("YearClosed", decoded(item))
        assert event.event_type == YEAR_CLOSE  # `split_segments` makes a segment of a year close alone
        rows = self.rows_for(None)
        rows.settling(item)
        seq = self.sequencer.next(item, rows)
        rows.keep_signature(item)
        book = await self.ledger.load_book(registry, [])
        try:
            policy = open_close(book, event)
        except Rejected as rejection:
            rows.reject(
                seq,
                event.event_id,
                item.source,
                rejection.reason,
                rejection.detail,
                item.payload,
                policy_id=policy_in_force(book, event),
                region=event.region,
            )
            await self.write(rows, registry)
            self._published(rows)
            return
        rows.positions[seq] = None
        rows.members_only = frozenset()
        rows.closed_years.append((event.region, event.year, seq))
        await self.write(rows, registry)
        self._published(rows)
        if policy is not None:  # a region with incentives that year: its members are evaluated
            async for members in self.ledger.region_members(event.region, CLOSE_CHUNK):
                chunk = self.rows_for(frozenset(m.member_id for m in members))
                outputs = evaluate(policy, event, members)
                # the members as this chunk holds them (a Book held across batches keeps all of its own)
                chunk.accept(seq, event, outputs, Book(book.policies, {(m.region, m.member_id): m for m in members}))
                await self.write(chunk, registry)
                self._published(chunk)
        finish_close(book, event)  # closed in the Book too, which a ledger held in memory goes on settling with


class Parking:
    """Visit and account events for members not yet enrolled wait here; an enrolment releases them in the order
    they arrived. The waiting room is append-only: an event waits while it is parked and not yet in the ledger,
    so nothing can make it disappear: an event waits while it is parked, not in the ledger, and its own bytes not
    refused (a parked event whose bytes a later version no longer decodes is refused with those very bytes). One
    that waits too long is refused (`LedgerService.sweep`)."""

    def __init__(self, ledger: SettlingReads, now: datetime, arrivals: dict[str, int]) -> None:
        """`arrivals`: the last arrival of each region the batch may park in. An arrival orders the events that
        wait in a region; one counter over the batch's regions keeps each region's in order."""
        self.ledger, self.now = ledger, now
        self.arrivals = dict(arrivals)
        self.arrival = max(arrivals.values(), default=0)
        self.parked: list[Incoming] = []  # parked by this batch, in arrival order
        # digests of the parked bytes read as still waiting: a refusal of them (without a ledger position, which no
        # stream's head shows) would end their wait (`carry.Watermark`)
        self.revived: list[str] = []

    def should_park(self, item: Incoming, book: Book) -> bool:
        event = member_event(item)
        return not item.expired and event.event_type in PARKABLE and book.member(event.region, event.member_id) is None

    def park(self, item: Incoming, rows: BatchRows) -> None:
        self.arrival += 1
        self.parked.append(item)
        event = member_event(item)
        self.arrivals[event.region] = self.arrival
        rows.parked.append(
            (event.event_id, event.region, event.member_id, item.payload, item.source, self.now, self.arrival)
        )
        rows.published.append(
            {
                "parked": event.event_id,
                "member_id": event.member_id,
                "region": event.region,
                "detail": f"member {event.member_id} is not enrolled yet; waiting for the enrolment",
            }
        )

    async def waiting_for(
        self, events: Sequence[EventBase], carry: Carry | None = None
    ) -> dict[tuple[str, str], list[Incoming]]:
        """What waits for the members these events enrol, oldest first; with `carry`, as the batch before left
        the waiting room (what it appended waits no more; what it parked waits after what was there)."""
        keys = {(e.region, cast(MemberEvent, e).member_id) for e in events if e.event_type == "member.enrolled"}
        waiting: dict[tuple[str, str], list[Incoming]] = defaultdict(list)
        rows: Sequence[tuple[Any, ...]] = []
        if keys:
            rows = await self.ledger.waiting_for(keys)
        for region, member_id, payload, source, event_id in rows:
            if carry is None or not carry.waits_no_more(event_id, payload, parked_source(source, event_id)):
                waiting[(region, member_id)].append(revive(payload, source, event_id))
                self.revived.append(text_digest(payload))
        if carry is not None:
            for key in keys & carry.parked.keys():
                there = {parked_id(item) for item in waiting.get(key, ())}
                carried = [i for i in carry.parked[key] if decoded(i).event_id not in there]
                waiting[key].extend(carried)
                # read as waiting through the batch before, not from the ledger: a refusal of their bytes (a sweep
                # meanwhile) ends their wait all the same
                self.revived.extend(text_digest(i.payload) for i in carried)
        queues = list(waiting.items())
        kept = iter(await self._refuse_taken([item for _, queue in queues for item in queue]))  # one read for all
        return {at: [next(kept) for _ in queue] for at, queue in queues}

    async def expired(self, cutoff: datetime, limit: int, ttl: timedelta, region: str) -> list[Incoming]:
        """Of `region`'s waiting events, those parked before `cutoff`, oldest first."""
        rows = await self.ledger.expired_parked(cutoff, limit, region)
        items = []
        for event_id, payload, source, parked_at in rows:
            item = revive(payload, source, event_id)
            item.expired = f"parked since {parked_at.isoformat()} and no enrolment arrived within {ttl}"
            items.append(item)
        return await self._refuse_taken(items)

    async def _refuse_taken(self, items: list[Incoming]) -> list[Incoming]:
        """Parked events whose event_id the ledger holds for another event, refused as conflicting (with no ledger
        position, their payload kept as parked, which ends their wait: `db.parking.WAITING`). Event ids are
        unique across regions (`ledger_event_ids`), and the writers of two regions do not wait for each other:
        one may append an event while the other, having found the id free, parks a different one under it. The
        event in the ledger stands; the parked one, released or expired, would otherwise be appended under an id
        already taken, which the ledger refuses, and its batch with it, for good. The refusal is of the bytes
        parked, as the waiting room holds them, under the source it holds: one parked by the batch before, read
        through it, is revived from them, not refused as it arrived."""
        ids = [item.event.event_id for item in items if item.event is not None]
        if not ids:
            return items
        held: dict[str, list[str]] = defaultdict(list)
        for event_id, payload in await self.ledger.held(ids):
            held[event_id].append(payload)
        kept = []
        for item in items:
            if item.event is not None:
                event_id, payload = item.event.event_id, item.payload
                other = next((found for found in held.get(event_id, ()) if found != payload), None)
                if other is not None:
                    item = revive(payload, item.source, event_id)
                    conflicting(item, other)
            kept.append(item)
        return kept


def parked_id(item: Incoming) -> str | None:
    """The event id a revived parked event waits under, decoded or not (`revive` names its refusal by it)."""
    if item.event is not None:
        return item.event.event_id
    return item.error.event_id if item.error is not None else None


def parked_source(source: str | None, event_id: str) -> str:
    """Where a revived parked event says it came from (`db.parking.WAITING` reads it the same way)."""
    return source or f"parked:{event_id}"


def revive(payload: str, source: str | None, event_id: str) -> Incoming:
    """A parked event as it was received; its canonical bytes are the ones parked."""
    item = decode_canonical(payload, parked_source(source, event_id), event_id)
    if item.error is not None and item.error.event_id is None:
        item.error.event_id = event_id  # refused as the parked event it is
    return item
