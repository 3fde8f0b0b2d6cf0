"""The ledger recorder: the one way settling (`ledger.pipeline`), the service, replay and reports reach storage.

A recorder opens sessions. A session reads, or, opened for writing, holds one batch's transaction under the append locks
of the batch's regions (`ledger.streams`: a ledger stream per region): everything the batch writes through it commits
together or not at all, exactly as the batch was settled. The PostgreSQL recorder (`ledger.db.recorder`) keeps the
ledger in the database and all of its SQL under `ledger/db/`; the memory recorder (`ledger.memory_recorder`) keeps the
same rows in memory, for the offline settlement and for the pipeline's own tests. Both pass one contract suite
(tests/recorder).

The methods are named for what the ledger holds, never for a table: stream heads, batches of rows appended,
parked events and their release, members, derived rows and projections, the consumer's offsets and claims, and
the watermark.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from policies.book import Book
from policies.member import MemberState
from policies.registry import PolicyRegistry

from .batch import BatchRows
from .carry import Carry, Watermark
from .chain import ChainBreak
from .contract import EventBase
from .streams import Head

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Claim:
    """A consumer's hold on a partition: the epoch it claimed it at, and where to resume (None: nothing consumed
    from it yet)."""

    epoch: int
    next_offset: int | None


@dataclass(frozen=True)
class Tracking:
    """Where a batch read from the broker: committed with it, only while the consumer's claims still hold."""

    consumer: str
    claims: dict[TopicPartition, Claim]
    spans: dict[TopicPartition, tuple[int, int]]  # first offset in the batch, offset after its last


@dataclass(frozen=True)
class Written:
    """What writing a batch found: the watermark before its rows (when it was asked to check one), and the outbox
    positions before its records and of its last one."""

    found: Watermark | None = None
    outbox: tuple[int, int] | None = None


class Collision(RuntimeError):
    """Another writer's rows took a batch's sequence numbers or event ids: the batch wrote nothing. `taken_id`: an
    event id (of the ledger, the waiting room or the signatures) was taken, which a writer of another region,
    holding none of the batch's locks, can do; or the batch and such a writer each waited at ids the other had
    written, and the database failed this one."""

    def __init__(self, message: str, taken_id: bool = False):
        super().__init__(message)
        self.taken_id = taken_id


class SettlingReads(Protocol):
    """What settling a batch reads: the Book of its events, the region's members for a year close, the parked
    events its enrolments release, the parked events that waited too long, and whose visits its reversals name."""

    async def load_book(
        self,
        registry: PolicyRegistry,
        events: Iterable[EventBase],
        loaded: dict[tuple[str, str], str | None] | None = None,
        carry: Carry | None = None,
    ) -> Book:
        """A Book holding what `events` can touch: their members and payers, the visits they name, the payment
        ids they use and every closed year. With `loaded`, the parameter digest of each member's last event is kept
        there (None: it has none). With `carry`, what the batch before changed is read from it."""

    def region_members(self, region: str, size: int) -> AsyncIterator[list[MemberState]]:
        """The region's members in member_id order, `size` at a time."""

    async def waiting_for(self, keys: Iterable[tuple[str, str]]) -> Sequence[tuple]:
        """(region, member_id, payload, source, event_id) of the events parked for the members at `keys` and
        still waiting (not in the ledger in their own region, their own bytes not refused), in the order they
        arrived."""

    async def expired_parked(self, cutoff: datetime, limit: int, region: str) -> Sequence[tuple]:
        """(event_id, payload, source, parked_at) of up to `limit` events of `region` still waiting since before
        `cutoff`, oldest first."""

    async def held(
        self, event_ids: list[str], ahead_of: Sequence[EventBase] = (), carry: Carry | None = None
    ) -> list[tuple[str, str]]:
        """(event_id, canonical payload) of the events at `event_ids` in the ledger, whatever their region, then of
        those waiting. With `ahead_of`, the session may also read, in the same round trip, what its next
        `load_book` (of those events or some of them, through `carry`) looks up: a batch costs one round trip
        less, and its book is the same."""

    async def visit_facilities(self, event_ids: list[str]) -> dict[str, str | None]:
        """The facility_id of each visit event in the ledger named by its event id."""


class LedgerSession(SettlingReads, Protocol):
    """One session of a recorder: what the service reads before and while it settles a batch, and the batch's
    writes."""

    async def stream_heads(self, regions: Iterable[str] | None = None, make: bool = False) -> dict[str, Head]:
        """Where the stream of each of `regions` (of every region when None) stands, with the parameter set it
        adopted last (`streams.Head`); with `make`, the regions that have no stream yet are given one (numbered
        and anchored as `ledger.streams` says, kept even if the batch that needed it writes nothing)."""

    async def arrivals(self, regions: Iterable[str]) -> dict[str, int]:
        """The arrival number of the event parked last in each of `regions`; 0 where none ever was."""

    async def projections_file(self) -> int:
        """The part of the watermark every batch reads whatever its regions and input: which rebuild of the
        projections is in place."""

    async def watermark(self, regions: Iterable[str], digests: Iterable[str] = ()) -> Watermark:
        """How far the ledger is for `regions` and the refusals without a position of the payload `digests`
        (`carry.Watermark`)."""

    async def last_adopted(self, region: str | None = None) -> str | None:
        """The digest of the parameter set adopted last (in `region`'s stream, given one); None before any."""

    async def expired_regions(self, cutoff: datetime) -> list[str]:
        """The regions with events waiting since before `cutoff`, in order."""

    async def refused(self, digests: list[str]) -> set[str]:
        """Which payload digests of unreadable input were refused already."""

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
        """A batch's rows (events, ledger rows, parked events, signatures, projections and outbox records) in the
        session's transaction, with the parameter set `parameters` (whose digest is `digest`) when given. With
        `expected`, the write also reads the watermark of `regions` and of the refusals of the payload digests
        `refusals`, and moves the consumed offsets of `tracking`, and
        raises `carry.Conflict` (the ledger moved) or `StaleClaim` (a partition was claimed again) after it unless the
        ledger was where `expected` says and every partition is still claimed. Raises `Collision` when another writer's
        rows took the batch's numbers or ids."""

    async def advance(
        self,
        consumer: str,
        claims: Mapping[TopicPartition, Claim],
        spans: Mapping[TopicPartition, tuple[int, int]],
    ) -> None:
        """Move the consumed offsets past a batch, if every partition is still claimed and the batch does not
        start before the stored offset (raises `StaleClaim` or `OutOfSequence` otherwise)."""

    async def claims_of(self, tracking: Tracking) -> Sequence[tuple]:
        """(topic, partition, epoch, next_offset) of the partitions `tracking` read, as stored now (`db.tracking.check`
        tells whether they still hold)."""

    async def keeps_signatures(self) -> bool:
        """Whether the ledger keeps producers' signatures."""

    async def earlier_shapes(self) -> int:
        """How many member states were written by an earlier release (`codec.STATE_KEYS`)."""


class Recorder(Protocol):
    """Where a ledger is kept."""

    def reading(self) -> AbstractAsyncContextManager[LedgerSession]:
        """A session for reads in no transaction."""

    def writing(self, writer: str, regions: Iterable[str]) -> AbstractAsyncContextManager[LedgerSession]:
        """A session holding one transaction under the append locks of `regions` (`streams.NO_REGION` among them
        for input that names no region), taken in one fixed order (`streams.locks`), which commits on leaving it
        (rolls back on an error); once it commits, relays are told that `writer` wrote. Writers of other regions
        are not held back."""

    async def claim(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        """Take partitions over for `consumer`: raise their epochs, and say where to resume."""

    async def rebase(self, consumer: str, partition: TopicPartition, held: Claim, offset: int) -> Claim | None:
        """Move a partition's stored offset back to `offset` under the claim `held`, only from where it stood."""

    async def stored_offsets(self, consumer: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Claim]:
        """The committed positions and epochs, read without claiming."""

    async def close(self) -> None:
        """Give back what the recorder holds (connections)."""


class ReportReads(Protocol):
    """What the statements and traces people read are built from (`ledger.reports`)."""

    async def member_states(self, member_id: str, region: str | None) -> list[tuple[str, dict]]:
        """(region, state JSON) of the member in each region it is known in (or in `region`), by region."""

    async def latest_visit(self, region: str, member_id: str) -> date | None:
        """The date of the member's latest settled visit."""

    async def member_parameters(self, region: str, member_id: str) -> str | None:
        """The text of the parameter set the member's state was last settled under."""

    async def member_year(self, region: str, member_id: str, year: int) -> dict | None:
        """The member's figures of `year` (`projections.member_year`)."""

    async def settlements(self, region: str, member_id: str, first: date, last: date) -> list[dict]:
        """The member's settlement records of visits from `first` to `last`, in ledger order."""

    async def movements(self, region: str, member_id: str, since: datetime, until: datetime) -> list[dict]:
        """The member's account movement records, each with its event's time as `occurred_at`, in ledger order."""

    async def incentives(self, region: str, member_id: str) -> list[dict]:
        """The member's incentive evaluations, in ledger order."""

    async def settlement_trace(self, settlement_id: str) -> dict | None:
        """A settlement's record and deltas with its event's seq, event_id, payload, params_digest, hash,
        recorded_at and source."""

    async def settlement(self, settlement_id: str) -> dict | None:
        """A settlement's record."""

    async def parameters(self, digest: str) -> str | None:
        """The text of the parameter set recorded under `digest`."""

    async def last_adoption(self, before: int | None = None) -> tuple[int, str] | None:
        """(seq, digest) of the adoption last before position `before` (by default, of all)."""

    async def month_by_facility(self, region: str, first: date) -> list[dict]:
        """The month's clearing statement, per designated facility."""

    async def month_by_level(self, region: str, first: date) -> list[dict]:
        """The month's fund figures, by facility level."""


class AuditSession(SettlingReads, Protocol):
    """What replay reads and writes (`ledger.replay`): the events in order and the rows derived from them, the
    projections beside the ones it rebuilds aside, the chain, the parameter sets and their adoptions, the waiting
    room and the producers' signatures."""

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """A transaction the statements of the session belong to until it commits."""

    async def lock_writers(self, regions: list[str] | None) -> None:
        """Hold the append locks of `regions` (of every region's stream and of input that names none, when None)
        until the transaction ends: no writer of them appends meanwhile."""

    async def empty_projections(self) -> None:
        """Empty the live projections, to rebuild them."""

    async def create_shadow(self, shadow: Any) -> None:
        """Fresh, empty projections aside, named by `shadow` (`db.projection_store.Names`)."""

    async def look_up_compared(self, shadow: Any) -> None:
        """From now on, settled visits are looked up among the ledger's settlements compared so far (`compared`),
        and beside them the re-derived ones that compared unequal, which alone are kept in `shadow`'s settlements."""

    async def compared(
        self, through: int, unequal: list[tuple[str, str]], rederived: list[tuple], uncompared: list[int]
    ) -> None:
        """The ledger's settlements compared through the position `through`: `unequal`, the (key, region) of those
        that did not compare equal on either side, `rederived`, the re-derived settlements among them, and
        `uncompared`, the positions up to it whose settlements no comparison read."""

    async def event_count(self) -> int:
        """How many rows the ledger holds, over every stream."""

    async def stream_heads(self, regions: Iterable[str] | None = None, make: bool = False) -> dict[str, Head]:
        """Where the stream of each of `regions` (of every region, when None) stands."""

    async def events_after(
        self, after: int, limit: int, regions: list[str] | None, columns: str, ahead: bool = False
    ) -> Sequence:
        """(seq, params_digest, source, payload, *`columns`) of up to `limit` events after `after`, in order."""

    async def hash_at(self, seq: int) -> bytes | None:
        """The hash of the event at `seq`, if there is one."""

    async def verify_streams(
        self, regions: list[str] | None = None, elsewhere: list[str] | None = None
    ) -> tuple[list[ChainBreak], list[Head]]:
        """The history's chain and every region's stream walked, each from where it starts: every place where a
        chain does not hold, and the heads walked to (the history's first). With `regions`, their streams alone;
        the streams of `elsewhere` are walked by another replayer meanwhile, and left to it."""

    async def heads_at(self, positions: list[tuple[str, int]]) -> list[Head] | None:
        """The heads at the given (region, seq), with the hashes the chains hold there; None when a region has no
        stream or no event is at a seq in its range."""

    async def kept_heads(self) -> list[list[tuple[str, int]]]:
        """The (region, seq) of the stream heads each verification kept (`replay.keep_verification`) names."""

    async def strays(self, projection: str, outside: list[str]) -> int:
        """Rows of `projection` of no region in `outside`."""

    async def derived_count(self, table: str, where: str, regions: list[str] | None) -> int:
        """Rows of a ledger table derived from events of `regions` (every region when None)."""

    async def stored_rows(self, spec: Any, seqs: list[int], members: list[str] | None) -> Sequence:
        """The rows of `spec`'s table (`verify_rows.DerivedTable`) at the positions `seqs` (of `members`)."""

    async def in_server_text(self, spec: Any, pairs: list[tuple[tuple, Sequence[Any]]]) -> set[int]:
        """Of (re-derived row, stored row) `pairs` of `spec`'s table that differ in their JSON columns' text alone,
        the indexes of those whose stored texts are the server's text of the re-derived values, as a record kept
        before revision 0016 is."""

    async def parked_rows(self, after: tuple, limit: int) -> Sequence:
        """Up to `limit` rows of the waiting room after `after` (`db.verification.PARKED_ROWS`)."""

    async def parked_since(self, event_ids: list[str]) -> dict[str, datetime]:
        """When each of these parked events was parked."""

    async def parameter_sets(self) -> list[tuple[str, str]]:
        """(digest, text) of every parameter set recorded."""

    async def parameters(self, digest: str) -> str | None:
        """The text of the parameter set recorded under `digest`."""

    async def adoptions_between(self, after: int, through: int) -> list[tuple[int, str]]:
        """(seq, digest) of the adoptions after `after`, up to `through`, in order."""

    async def adoption_rows(self) -> list[tuple[int, str, str, str | None]]:
        """(seq, payload, digest, recorded text of that digest) of every adoption, in order."""

    async def differing_rows(self, projection: str, shadow: str, limit: int, regions: list[str] | None) -> Sequence:
        """(key, live, replayed, columns) of up to `limit` rows of `projection` that differ from `shadow`."""

    async def count_differences(self, live: str, shadow: str, regions: list[str] | None) -> int:
        """How many rows of `live` (of `regions`) and `shadow` the other lacks."""

    async def write_replayed(self, rows: BatchRows, registry: PolicyRegistry, params_digest: str) -> None:
        """A replayed batch's settlements and projections, member_year aside; `params_digest`: the parameter set
        its events were recorded under."""

    async def write_member_years(self, registry_of: Callable[[str], Awaitable[PolicyRegistry]]) -> None:
        """member_year from every member's final state."""

    async def unsigned_since_signing(self) -> list[tuple[int, str]]:
        """(seq, event_id) of events recorded with no signature since the ledger first kept one."""

    def stored_signatures(self) -> AsyncIterator[list]:
        """The signatures kept, a chunk of rows at a time."""
