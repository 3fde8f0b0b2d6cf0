"""One batch of events through the engine, the same way for live ingest and for replay.

Live, a batch runs in one transaction under the append lock: events get their sequence and hash as they are
applied, a visit or account event for a member not yet enrolled is parked instead, an enrolment releases what
waited for it, and the ledger rows and projections are written before commit. Replay walks events already in
the ledger with their recorded sequences, writing projections into fresh tables.

A year close touches every member of the region, so it is its own segment: what came before it is written
first, then the region's members are evaluated a chunk at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from policies.book import Book
from policies.engine import Engine
from policies.registry import PolicyRegistry
from policies.rejection import Rejected
from policies.year_close import evaluate, finish_close, open_close

from .batch import BatchRows
from .db.projection_store import Names, load_book, region_member_chunks
from .intake import PARKABLE, Incoming, decode
from .store import NewEvent, chain_onto

YEAR_CLOSE = "period.year_closed"
CLOSE_CHUNK = 2_000


class Sequencer:
    """Hands out ledger positions: the next sequence and hash (live), or the recorded ones (replay)."""

    def __init__(self, seq: int, prev_hash: bytes, params_digest: str):
        self.seq, self.prev_hash, self.params_digest = seq, prev_hash, params_digest

    def next(self, item: Incoming, rows: BatchRows) -> int:
        self.seq += 1
        event = item.event
        stored = chain_onto(self.seq, self.prev_hash, NewEvent(
            event.event_id, event.event_type, event.region, getattr(event, "member_id", None), event.occurred_at,
            item.payload, self.params_digest, item.source,
        ))
        rows.events.append(stored)
        self.prev_hash = stored.hash
        return self.seq


class Recorded:
    """Replay: the sequence each event already has."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}

    def next(self, item: Incoming, rows: BatchRows) -> int:
        return self.positions[item.event.event_id]


def split_segments(items: Sequence[Incoming]) -> list[list[Incoming]]:
    segments: list[list[Incoming]] = [[]]
    for item in items:
        if item.event.event_type == YEAR_CLOSE:
            segments.append([item])
            segments.append([])
        else:
            segments[-1].append(item)
    return [segment for segment in segments if segment]


def apply_one(book: Book, rows: BatchRows, seq: int, item: Incoming) -> bool:
    event = item.event
    try:
        outputs = Engine(book=book).apply(event, seq)
    except Rejected as rejection:
        detail = f"{item.expired}; {rejection.detail}" if item.expired else rejection.detail
        rows.reject(seq, event.event_id, item.source, rejection.reason, detail, item.payload)
        return False
    rows.accept(seq, event, outputs, book)
    return True


class Pipeline:
    """Runs segments of a batch against the projections named by `names`, writing through `write`."""

    def __init__(self, raw, names: Names, registry_for: Callable[[Incoming], PolicyRegistry], sequencer,
                 write: Callable, parking: Parking | None = None):
        self.raw, self.names, self.registry_for = raw, names, registry_for
        self.sequencer, self.write, self.parking = sequencer, write, parking
        self.published: list[dict] = []

    async def run(self, items: Sequence[Incoming]) -> None:
        for segment in split_segments(items):
            if segment[0].event.event_type == YEAR_CLOSE:
                await self._close_year(segment[0])
            else:
                await self._segment(segment)

    async def _segment(self, items: list[Incoming]) -> None:
        registry = self.registry_for(items[0])
        released = await self.parking.waiting_for(items) if self.parking else {}
        extra = [i.event for waiting in released.values() for i in waiting]
        book = await load_book(self.raw, self.names, registry, [i.event for i in items] + extra)
        rows = BatchRows()
        for item in items:
            event = item.event
            key = (event.region, event.member_id)
            if self.parking and self.parking.should_park(item, book):
                self.parking.park(item, rows)
                released.setdefault(key, []).append(item)
                continue
            accepted = apply_one(book, rows, self.sequencer.next(item, rows), item)
            if accepted and event.event_type == "member.enrolled" and released.get(key):
                for waiting in released.pop(key):
                    apply_one(book, rows, self.sequencer.next(waiting, rows), waiting)
                    self.parking.release(waiting, rows)
        if self.parking:
            self.parking.settle_in_batch(rows)
        await self.write(rows, registry)
        self.published.extend(rows.published)

    async def _close_year(self, item: Incoming) -> None:
        registry = self.registry_for(item)
        event = item.event
        rows = BatchRows()
        seq = self.sequencer.next(item, rows)
        book = await load_book(self.raw, self.names, registry, [])
        try:
            policy = open_close(book, event)
        except Rejected as rejection:
            rows.reject(seq, event.event_id, item.source, rejection.reason, rejection.detail, item.payload)
            await self.write(rows, registry)
            self.published.extend(rows.published)
            return
        rows.derived[seq] = []
        rows.closed_years.append((event.region, event.year, seq))
        await self.write(rows, registry)
        self.published.extend(rows.published)
        if policy is None:
            return
        async for members in region_member_chunks(self.raw, self.names, event.region, CLOSE_CHUNK):
            chunk = BatchRows()
            book.members = {(m.region, m.member_id): m for m in members}
            outputs = evaluate(policy, event, members)
            chunk.accept(seq, event, outputs, book)
            await self.write(chunk, registry)
            self.published.extend(chunk.published)
        finish_close(book, event)


class Parking:
    """Visit and account events for members not yet enrolled wait here; an enrolment releases them in the order
    they arrived. One that waits longer than its time is refused (sweep)."""

    def __init__(self, raw, now: datetime, arrival: int):
        self.raw, self.now, self.arrival = raw, now, arrival
        self._parked_here: set[str] = set()
        self._released_here: set[str] = set()

    def should_park(self, item: Incoming, book: Book) -> bool:
        event = item.event
        return (not item.expired and event.event_type in PARKABLE
                and book.member(event.region, event.member_id) is None)

    def park(self, item: Incoming, rows: BatchRows) -> None:
        self.arrival += 1
        event = item.event
        rows.parked.append((event.event_id, event.region, event.member_id, item.payload, item.source, self.now,
                            self.arrival))
        self._parked_here.add(event.event_id)
        rows.published.append({"parked": event.event_id, "member_id": event.member_id, "region": event.region,
                               "detail": f"member {event.member_id} is not enrolled yet; waiting for the enrolment"})

    def release(self, item: Incoming, rows: BatchRows) -> None:
        if item.event.event_id in self._parked_here:
            self._released_here.add(item.event.event_id)
        else:
            rows.released.append(item.event.event_id)

    def settle_in_batch(self, rows: BatchRows) -> None:
        """Parked and released within one batch: never written to the waiting room at all."""
        if self._released_here:
            rows.parked = [row for row in rows.parked if row[0] not in self._released_here]

    async def waiting_for(self, items: Sequence[Incoming]) -> dict[tuple[str, str], list[Incoming]]:
        keys = {(i.event.region, i.event.member_id) for i in items if i.event.event_type == "member.enrolled"}
        waiting: dict[tuple[str, str], list[Incoming]] = defaultdict(list)
        if not keys:
            return waiting
        regions, members = zip(*keys)
        rows = await self.raw.fetch(
            "SELECT p.region, p.member_id, p.payload, p.source, p.event_id FROM parked_events p "
            "JOIN unnest($1::text[], $2::text[]) AS k(region, member_id) "
            "ON p.region = k.region AND p.member_id = k.member_id ORDER BY p.arrival",
            list(regions), list(members),
        )
        for region, member_id, payload, source, event_id in rows:
            item = decode(payload, source or f"parked:{event_id}", event_id)
            item._payload = payload
            waiting[(region, member_id)].append(item)
        return waiting

