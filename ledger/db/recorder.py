"""The PostgreSQL recorder (`ledger.recorder`): the ledger in the database, each session on one pooled driver
connection. It calls the functions of this package; it adds no statement and no round trip to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from asyncpg.exceptions import DeadlockDetectedError, UniqueViolationError

from policies.book import Book
from policies.member import MemberState
from policies.registry import PolicyRegistry

from ..batch import BatchRows
from ..carry import Carry, Conflict, Watermark, watermark_of
from ..contract import EventBase
from ..recorder import Claim, Collision, TopicPartition, Tracking, Written
from ..streams import Head
from . import adoptions, lookups, parking, projection_store, streams
from . import tracking as offsets
from . import watermark as watermarks
from .connect import Pool, close_pool
from .connection import Raw
from .event_store import add_events, add_parameters, begin, reading
from .held_members import HeldMembers
from .outbox import CHANNEL, add_outbox
from .projection_store import Names, add_ledger, add_projections
from .signatures import keeps_signatures
from .writes import Writes

LIVE = Names()
# The unique constraints a writer of another region can beat a batch to: an event id is the ledger's, not a region's.
TAKEN_IDS = frozenset({"ledger_event_ids_pkey", "parked_events_pkey", "ledger_signatures_pkey"})


class PostgresSession:
    """A recorder session on an asyncpg connection, with the projections named by `names`."""

    def __init__(self, raw: Raw, names: Names = LIVE):
        self.raw, self.names = raw, names
        self.ahead: projection_store.Ahead | None = None  # read by `held` for the next `load_book`
        # member states held in memory across batches, which `load_book` takes first (a replay's: `db.held_members`)
        self.holding: HeldMembers | None = None

    # what settling reads

    async def load_book(
        self,
        registry: PolicyRegistry,
        events: Iterable[EventBase],
        loaded: dict[tuple[str, str], str | None] | None = None,
        carry: Carry | None = None,
    ) -> Book:
        ahead, self.ahead = self.ahead, None
        return await projection_store.load_book(
            self.raw, self.names, registry, events, loaded, carry, ahead, self.holding
        )

    def region_members(self, region: str, size: int) -> AsyncIterator[list[MemberState]]:
        return projection_store.region_member_chunks(self.raw, self.names, region, size)

    async def waiting_for(self, keys: Iterable[tuple[str, str]]) -> list[tuple]:
        return await parking.waiting_for(self.raw, keys)

    async def expired_parked(self, cutoff: datetime, limit: int, region: str) -> list[tuple]:
        return await parking.expired(self.raw, cutoff, limit, region)

    async def visit_facilities(self, event_ids: list[str]) -> dict[str, str | None]:
        return await lookups.visit_facilities(self.raw, event_ids)

    # what the service reads

    async def stream_heads(self, regions: Iterable[str] | None = None, make: bool = False) -> dict[str, Head]:
        return await streams.stream_heads(self.raw, regions, make)

    async def arrivals(self, regions: Iterable[str]) -> dict[str, int]:
        return await streams.arrivals(self.raw, regions)

    async def projections_file(self) -> int:
        return await watermarks.projections_file(self.raw)

    async def watermark(self, regions: Iterable[str], digests: Iterable[str] = ()) -> Watermark:
        return await watermarks.watermark(self.raw, regions, digests)

    async def last_adopted(self, region: str | None = None) -> str | None:
        return await adoptions.last_adopted(self.raw, region)

    async def expired_regions(self, cutoff: datetime) -> list[str]:
        return await parking.expired_regions(self.raw, cutoff)

    async def held(
        self, event_ids: list[str], ahead_of: Sequence[EventBase] = (), carry: Carry | None = None
    ) -> list[tuple[str, str]]:
        if not ahead_of:
            return await parking.held(self.raw, event_ids)
        found, self.ahead = await parking.held_and_ahead(self.raw, self.names, event_ids, ahead_of, carry)
        return found

    async def refused(self, digests: list[str]) -> set[str]:
        return await parking.refused_digests(self.raw, digests)

    async def keeps_signatures(self) -> bool:
        return await keeps_signatures(self.raw)

    async def earlier_shapes(self) -> int:
        return await projection_store.earlier_shapes(self.raw, self.names)

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
        """A small batch's rows as one statement (`db.writes`), which with `expected` also reads the watermark
        of `regions` and `refusals` and the consumer's claims as they stood before it."""
        writes = Writes.sized(rows.size())
        level: int | None = None
        claims: offsets.ClaimsRead | None = None
        if expected is not None:
            level = watermarks.add_watermark(writes, regions, refusals)
            if tracking is not None:
                claims = offsets.add_claimed_offsets(writes, tracking.consumer, tracking.claims, tracking.spans)
        if parameters is not None:
            add_parameters(writes, digest, parameters)
        add_events(writes, rows.events)
        add_ledger(writes, rows)
        add_projections(writes, self.names, rows, registry, digest)
        outbox = add_outbox(writes, rows.outbox)
        try:
            result = await writes.run(self.raw)
        except UniqueViolationError as error:
            raise Collision(str(error), taken_id=error.constraint_name in TAKEN_IDS) from error
        except DeadlockDetectedError as error:
            # Writers of one region take its lock first; two that wait for each other hold no lock in common, so
            # they wrote rows of the ledger's, not a region's: the same event ids, each in its own order. The server
            # failed this one; settled again, it finds what the other committed.
            raise Collision(str(error), taken_id=True) from error
        found = None
        if expected is not None and level is not None:
            if tracking is not None and claims is not None:
                offsets.verify_claims(tracking.claims, tracking.spans, claims, result)
            found = watermark_of(result[level])
            if found != expected:
                raise Conflict.moved(expected, found)
        return Written(found, None if outbox is None else (result[outbox[0]], result[outbox[1]]))

    async def advance(
        self,
        consumer: str,
        claims: Mapping[TopicPartition, Claim],
        spans: Mapping[TopicPartition, tuple[int, int]],
    ) -> None:
        await offsets.advance(self.raw, consumer, claims, spans)

    async def claims_of(self, tracking: Tracking) -> list[tuple]:
        return await self.raw.fetch(offsets.CLAIMS, *offsets.claim_arguments(tracking.consumer, tracking.spans))


# The statements a batch is written with take their rows as one array a column (`db.writes`), so what PostgreSQL
# plans for them does not depend on the values given: an INSERT from `unnest()`, an upsert, a lookup by key. Left to
# itself (plan_cache_mode = auto) it planned the write statement of a small batch, a few dozen data-modifying CTEs,
# afresh at every execution, estimating each array's length: 4.2-4.5 ms of the server's CPU for a batch of 8 visits
# committed through the settler, against 2.9-3.2 ms planned once (`bench/small_batches.py`). Set for the append
# transaction alone; reads keep the server's own choice.
GENERIC_PLANS = "SET LOCAL plan_cache_mode = force_generic_plan"


class PostgresRecorder:
    """The ledger in PostgreSQL, through `pool`."""

    def __init__(self, pool: Pool, names: Names = LIVE):
        self.pool, self.names = pool, names

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PostgresSession]:
        async with reading(self.pool) as raw:
            yield PostgresSession(raw, self.names)

    @asynccontextmanager
    async def writing(self, writer: str, regions: Iterable[str]) -> AsyncIterator[PostgresSession]:
        """BEGIN, the append locks of `regions` in their fixed order (`streams.locks`), the transaction's id, and
        word to the relays naming `writer` (sent at commit), in one round trip. The id is taken before any outbox
        position is drawn, as a relay reading past a missing position relies on (`outbox.Gaps`). The statements of
        the transaction are planned once a connection (`GENERIC_PLANS`)."""
        first = "; ".join(
            filter(
                None,
                [
                    GENERIC_PLANS,
                    streams.locks(regions),
                    "SELECT pg_current_xact_id()",
                    f"NOTIFY {CHANNEL}, '{writer}'",
                ],
            )
        )
        async with begin(self.pool, first=first) as raw:
            yield PostgresSession(raw, self.names)

    async def claim(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        async with reading(self.pool) as raw:
            return await offsets.claim(raw, consumer, partitions)

    async def rebase(self, consumer: str, partition: TopicPartition, held: Claim, offset: int) -> Claim | None:
        async with reading(self.pool) as raw:
            return await offsets.rebase(raw, consumer, partition, held, offset)

    async def stored_offsets(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        async with reading(self.pool) as raw:
            return await offsets.stored(raw, consumer, partitions)

    async def close(self) -> None:
        await close_pool(self.pool)
