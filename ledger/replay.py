"""Replay: walk the ledger through the same pipeline as ingest, into fresh projections, without touching it.

- `verify` re-derives every settlement, movement, incentive evaluation and rejection under the parameters
  recorded with each event, compares them with what the ledger holds, compares the rebuilt projections with the
  live ones, and checks the hash chain.
- `compare` re-runs the ledger under changed parameters (what-if) and reports the fund impact per region, pool
  and month.
- `rebuild` drops the live projections and rebuilds them from the ledger alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from queue import Empty
from typing import TYPE_CHECKING, Any

from policies.parameters import ParameterSet, parse_parameters
from policies.registry import PolicyRegistry

from . import runtime
from .adoption import ADOPTED, EVERY_REGION, Adoptions, adoption_problem
from .authority import Authority, stored_problem
from .batch import BatchRows
from .chain import ChainBreak, text_digest
from .db.audit import auditing
from .db.projection_store import PROJECTIONS, Names
from .db.server import Database
from .intake import Incoming, decode_canonical
from .pipeline import Pipeline, Recorded, decoded, unpublished_rows
from .recorder import AuditSession
from .runtime import job_pool
from .streams import ROOT, Head, balanced, base, root_hash, stream_of
from .verify_rows import (
    DERIVED,
    EVENT_COLUMNS,
    SETTLEMENTS,
    differences,
    event_columns,
    expired_ids,
    judged,
    parked_differences,
)

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from .db.connection import Raw
    from .verify_rows import DerivedTable

SHADOW = Names.shadow()


@dataclass(frozen=True)
class Difference:
    seq: int
    what: str
    detail: str


@dataclass
class ReplayReport:
    events: int = 0  # ledger rows replayed, adoptions among them
    adoptions: int = 0  # of parameter sets (`ledger.adoption`)
    chain_breaks: list[ChainBreak] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    difference_count: int = 0
    projection_differences: dict[str, int] = field(default_factory=dict)
    projection_rows: list[Difference] = field(default_factory=list)  # the first rows that differ, by projection
    fund_impact: dict[tuple[str, str, date], list[Decimal]] = field(default_factory=dict)
    changed_settlements: int = 0
    # (rows of every chain, the root hash over the heads of the history and the regions' streams)
    head: tuple[int, bytes] | None = None
    heads: list[Head] = field(default_factory=list)  # of the history and of every region's stream, as verified
    signatures: int | None = None  # kept signatures checked again (None: no producers file to check them with)

    def replayed(self) -> str:
        """What was replayed, as the commands say it."""
        if self.adoptions == 0:
            return f"{self.events} ledger events"
        kind = "a parameter-set adoption" if self.adoptions == 1 else "parameter-set adoptions"
        return f"{self.events} ledger events, {self.adoptions} of them {kind}"

    @property
    def ok(self) -> bool:
        return not self.chain_breaks and not self.difference_count and not any(self.projection_differences.values())

    def differ(self, seq: int, what: str, detail: str, keep: int = 200) -> None:
        self.difference_count += 1
        if len(self.differences) < keep:
            self.differences.append(Difference(seq, what, detail))


# Events a replay settles at a time. Larger batches were no faster, and each process of a parallel verify
# holds one batch's events, rows and members at a time: at 5,000 a 92k-event verify's three processes (as it
# ran then) held 410 MB between them, at 2,000 280 MB.
REPLAY_BATCH = 2_000


async def verify_signatures(audit: AuditSession, authority: Authority | None, report: ReplayReport) -> None:
    """Every signature kept with an event checked again against the key its producer had when it arrived, and
    over the very event kept; an event recorded with none since the ledger first kept one is a difference too."""
    for seq, event_id in await audit.unsigned_since_signing():
        report.differ(seq, f"event {event_id}", "recorded after the ledger began keeping signatures, with none")
    if authority is None:
        return
    report.signatures = 0
    async for rows in audit.stored_signatures():
        for row in rows:
            report.signatures += 1
            problem = stored_problem(authority, row)
            if problem is not None:
                report.differ(0, f"signature of {row[0]} by {row[1]}", problem)


async def keep_verification(raw: Raw, report: ReplayReport, user: str, started_at: datetime) -> None:
    """A verification's result where the console's integrity page shows the last one from, whoever ran it: the
    console or `replay --verify`. With it, each region's head as the chain stands now."""
    from .db import console_users

    heads = [{"region": h.region, "seq": h.seq, "hash": bytes(h.hash).hex()} for h in report.heads]
    detail = "\n".join(
        [f"seq {b.seq}: {b.problem}" for b in report.chain_breaks[:20]]
        + [f"seq {d.seq} {d.what}: {d.detail}" for d in report.differences[:50]]
        + [
            f"projection {name}: {count} row(s) differ"
            for name, count in report.projection_differences.items()
            if count
        ]
    )
    await console_users.record_verification(
        raw,
        started_at,
        user,
        report.ok,
        report.replayed(),
        len(report.chain_breaks),
        report.difference_count,
        report.head,
        heads,
        detail,
    )


class Replayer:
    def __init__(
        self, db: Database, batch_size: int = REPLAY_BATCH, progress: Callable[[int, int], None] | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.db = db
        self.batch_size = batch_size
        self.progress = progress or (lambda done, total: None)
        self._registries: dict[str, PolicyRegistry] = {}
        self.regions: list[str] | None = None  # replay only these regions' events (no state crosses regions)
        self.check_chain = True
        # With `regions`: every region some worker replays. Projection rows of any other region derive from no
        # event of the ledger, and this worker counts them as differences.
        self.stray_outside: list[str] | None = None
        # The ledger holds `regions` alone, not the history nor any other region (a server a region was moved to,
        # docs/scaling.md): their streams are verified from their genesis, and nothing else is looked for.
        self.streams_only = False
        # Split by region over processes (`verify_in_parallel`): the one that checks the chain leaves the streams
        # of `streams_elsewhere` to the replayers of those regions, each of which walks its own (`own_streams`).
        self.streams_elsewhere: list[str] = []
        self.own_streams = False
        # (seq, hex sha256) of an event's hash recorded outside the database: its stream must still pass through
        # it; or (ROOT, hex sha256) of a root hash (`streams.root_hash`) printed by an earlier verify
        self.anchor: tuple[int | str, str] | None = None
        self.shown_rows = 20  # rows that differ named per projection (all are counted)
        self._authority: Authority | None = None
        self._audit: AuditSession | None = None  # while a run is under way

    def of_regions_alone(self, regions: Iterable[str]) -> None:
        """Verify a ledger that holds `regions` alone (a server they were moved to): their streams from their
        genesis, and any row of another region counted as a difference."""
        self.regions = self.stray_outside = sorted(set(regions))
        self.streams_only = True

    async def verify(self, authority: Authority | None = None) -> ReplayReport:
        """Everything re-derived and compared with the ledger, the chain walked, and every producer's signature
        kept with an event checked again against `authority` (the producers file; None: not checked, and said so
        by `report.signatures`). The command and the console both verify through here."""
        self._authority = authority
        return await self._run(mode="verify")

    async def compare(self, parameters_text: str, source: str | None = None) -> ReplayReport:
        return await self._run(mode="compare", what_if=parse_parameters(parameters_text, source))

    async def rebuild(self) -> ReplayReport:
        return await self._run(mode="rebuild")

    async def _run(self, mode: str, what_if: ParameterSet | None = None) -> ReplayReport:
        report = ReplayReport()
        self._seen = {spec.table: 0 for spec in DERIVED}  # ledger rows compared, per table
        self._adoptions = Adoptions()
        self._pending: list[int] = []  # positions read and not yet compared through (`_compared`)
        self._through = 0  # the position visits are looked up through (`_compare_through`)
        self._walked: dict[int, int] = {}  # the last position walked in each stream
        names = SHADOW if mode != "rebuild" else Names(settlements=SHADOW.settlements)
        try:
            async with auditing(self.db, names) as audit:
                self._audit = audit
                async with audit.transaction():
                    await audit.create_shadow(SHADOW)
                    if mode == "verify":
                        await audit.look_up_compared(SHADOW)
                if mode == "rebuild":
                    # One transaction under the append lock. TRUNCATE locks the projections until it commits, so
                    # nobody reads them half rebuilt; and it gives them new files, which moves the watermark of a
                    # batch settled before (`carry.Watermark`), so that batch is settled again, not written over.
                    async with audit.transaction():
                        await audit.lock_writers(self.regions)
                        await audit.empty_projections()
                        await self._walk(audit, 0, what_if, mode, report, per_batch=False)
                        await audit.write_member_years(lambda digest: self._registry(digest, what_if))
                    return report
                # Batch by batch into temporary tables while ingest goes on; then the last stretch, the
                # comparison of projections and the chain under the append lock, against one still ledger.
                after = await self._walk(audit, 0, what_if, mode, report, per_batch=True)
                if mode == "verify":
                    async with audit.transaction():
                        await audit.lock_writers(self.regions)
                        await self._catch_up(audit, after, report)
                        await self._walk(audit, after, what_if, mode, report, per_batch=False)
                        await audit.write_member_years(lambda digest: self._registry(digest, what_if))
                        for projection in PROJECTIONS:
                            shadow = getattr(SHADOW, projection)
                            count = await audit.count_differences(projection, shadow, self.regions)
                            count += await self._strays(audit, projection)
                            report.projection_differences[projection] = count
                            if count:
                                await self._projection_rows(audit, projection, shadow, report)
                        await self._unaccounted(audit, report)
                        if self.check_chain:
                            await self._check_parked(audit, report)
                            report.chain_breaks, report.heads = await audit.verify_streams(
                                self.regions if self.streams_only else None, self.streams_elsewhere
                            )
                            report.chain_breaks += await self._check_anchor(audit, report.heads)
                            report.head = (sum(h.position for h in report.heads), root_hash(report.heads))
                            await self._check_parameter_sets(audit, report)
                            await self._check_adoptions(audit, report)
                        elif self.own_streams:  # walked here, as they stand under this replayer's lock
                            report.chain_breaks, report.heads = await audit.verify_streams(self.regions)
                if mode == "verify" and self.check_chain:  # checked once, by the replayer that walks the chain
                    await verify_signatures(audit, self._authority, report)
        finally:
            self._audit = None
        return report

    async def _walk(
        self,
        audit: AuditSession,
        after: int,
        what_if: ParameterSet | None,
        mode: str,
        report: ReplayReport,
        per_batch: bool,
    ) -> int:
        # Progress is counted in events. A replay of some regions is not told a total: the caller that split them
        # knows it (`verify_in_parallel`).
        total = 0 if self.regions is not None else await audit.event_count()
        # Batch by batch, each in a transaction of its own, the next batch is read on a connection of its own
        # while this one settles and is written; in the last stretch, under the append lock, on the locked one.
        ahead = per_batch

        def read(after: int) -> Awaitable[Sequence[Sequence[Any]]]:
            return audit.events_after(after, self.batch_size, self.regions, EVENT_COLUMNS, ahead)

        rows = await read(after)
        while rows:
            after = rows[-1][0]
            following = asyncio.ensure_future(read(after)) if ahead else None
            try:
                async with audit.transaction() if per_batch else nullcontext():
                    await self._batch(audit, rows, what_if, mode, report)
            except BaseException:
                if following is not None:
                    following.cancel()
                    with suppress(BaseException):
                        await following
                raise
            report.events += len(rows)
            self.progress(report.events, max(total, report.events))
            for row in rows if stream_of(rows[0][0]) != stream_of(after) else rows[-1:]:
                self._walked[stream_of(row[0])] = row[0]
            rows = await (following if following is not None else read(after))
        return after

    async def _catch_up(self, audit: AuditSession, after: int, report: ReplayReport) -> None:
        """The walk takes the streams one after another, each a range of positions of its own (its region's code,
        or a number of its own, shifted): what a stream below the one it is in appended meanwhile, a stream it left
        behind or one made since, is walked here, in the last stretch, under the append locks, from where the walk
        left it, before the walk goes on from `after`. Its visits, its region's, are looked up through the stream's
        own last position compared, then through the one they were before."""
        resume = self._through
        heads = await audit.stream_heads(self.regions)
        for head in sorted(heads.values(), key=lambda head: head.stream):
            last = self._walked.get(head.stream, base(head.stream))
            if head.stream >= stream_of(after) or head.seq <= last:
                continue
            await self._compare_through(audit, last)
            while last < head.seq:  # read by its positions, all of them at once: no plan reads past the head
                count = min(self.batch_size, head.seq - last)
                read = await audit.events_after(last, count, self.regions, EVENT_COLUMNS)
                if not (rows := [row for row in read if row[0] <= head.seq]):  # a gap: the chain's to report
                    break
                await self._adoptions.read_back(audit, last, rows[-1][0])
                await self._batch(audit, rows, None, "verify", report)
                report.events += len(rows)
                self.progress(report.events, report.events)
                last = self._walked[head.stream] = rows[-1][0]
        await self._compare_through(audit, resume)

    async def _check_anchor(self, audit: AuditSession, heads: list[Head]) -> list[ChainBreak]:
        """A chain recomputed after events were changed, or cut short, is consistent in itself; only a hash kept
        elsewhere shows it is not the chain it was."""
        if self.anchor is None:
            return []
        seq, expected = self.anchor
        if seq == ROOT:
            return await self._check_root(audit, heads, expected)
        assert isinstance(seq, int)
        found = await audit.hash_at(seq)
        if found is None:
            return [ChainBreak(seq, "anchor: the ledger has no event at this position")]
        if bytes(found).hex() != expected.lower():
            return [ChainBreak(seq, f"anchor: hash {bytes(found).hex()} where {expected.lower()} was recorded")]
        return []

    async def _check_root(self, audit: AuditSession, heads: list[Head], expected: str) -> list[ChainBreak]:
        """The root hash of some heads the chains pass through: the heads now, or those of a verification kept
        before (positions only are taken from it; the hashes are the chains' own, just verified)."""
        candidates = [[(h.region, h.seq) for h in heads], *await audit.kept_heads()]
        for candidate in candidates:
            found = await audit.heads_at(candidate)
            if found is not None and root_hash(found).hex() == expected.lower():
                return []
        return [ChainBreak(0, f"anchor: no heads the chains pass through have the root hash {expected.lower()}")]

    async def _strays(self, audit: AuditSession, projection: str) -> int:
        if self.stray_outside is None:
            return 0
        return await audit.strays(projection, self.stray_outside)

    async def _unaccounted(self, audit: AuditSession, report: ReplayReport) -> None:
        """Ledger rows of the replayed events that no comparison met: rows added beside a year close for
        someone who is not its region's member, say (a close is compared a chunk of members at a time)."""
        for spec in DERIVED:
            found = await audit.derived_count(spec.table, spec.where, self.regions)
            if found != self._seen[spec.table]:
                kind = spec.table.removeprefix("ledger_").removesuffix("s")
                report.differ(
                    0, spec.table, f"{found - self._seen[spec.table]} {kind} row(s) that no replayed event derives"
                )

    async def _check_parked(self, audit: AuditSession, report: ReplayReport, chunk: int = 5_000) -> None:
        """Every parked event's row, of every region (a verify split by region checks them once, with the chain)."""
        after = (0, "")
        while rows := await audit.parked_rows(after, chunk):
            after = (rows[-1][5], rows[-1][0])
            for found in filter(None, map(parked_differences, rows)):
                report.differ(*found)

    async def _check_parameter_sets(self, audit: AuditSession, report: ReplayReport) -> None:
        """A parameter set is recorded under the sha256 of its text: anything else was put there by hand."""
        for digest, content in await audit.parameter_sets():
            if text_digest(content) != digest:
                report.differ(0, f"parameter set {digest[:16]}", "its text does not hash to its digest")

    async def _check_adoptions(self, audit: AuditSession, report: ReplayReport) -> None:
        """Each adoption in the chain adopts the parameter set recorded under its digest, text and all."""
        for seq, payload, digest, content in await audit.adoption_rows():
            problem = adoption_problem(payload, digest, content)
            if problem is not None:
                report.differ(seq, "adoption", problem)

    async def _registry(self, digest: str, what_if: ParameterSet | None) -> PolicyRegistry:
        key = digest if what_if is None else f"what-if/{digest}"
        if key not in self._registries:
            assert self._audit is not None, "parameters are read while a run is under way"
            content = await self._audit.parameters(digest)
            if content is None:  # events refer to their parameter set (a foreign key)
                raise LookupError(f"the ledger records no parameter set {digest}, yet events were settled under it")
            recorded = parse_parameters(content, f"parameter set {digest[:12]}")
            self._registries[key] = PolicyRegistry(recorded if what_if is None else recorded.merged(what_if))
        return self._registries[key]

    async def _batch(
        self,
        audit: AuditSession,
        rows: Sequence[Sequence[Any]],
        what_if: ParameterSet | None,
        mode: str,
        report: ReplayReport,
    ) -> None:
        sequencer = Recorded()
        items: list[Incoming] = []
        digests: dict[str, str] = {}
        if mode == "verify":
            await self._adoptions.read(audit, rows[-1][0])
            self._pending += [row[0] for row in rows]
        for seq, digest, source, payload, *columns in rows:
            if columns[1] == ADOPTED:  # event_type
                report.adoptions += 1  # settles nothing; checked with the chain (`_check_adoptions`)
                continue
            if mode == "verify" and (problem := self._adoptions.problem(seq, digest)):
                report.differ(seq, "parameters", problem)
            # Validated as the contract says, as when it was appended (the chain, not the decoder, shows that
            # these are the bytes appended); kept as the decoder's Struct, which settles alike (docs/verify.md).
            item = decode_canonical(payload, source or f"ledger:{seq}", seq, structs=True)
            if item.error is not None:
                report.differ(seq, "event", f"the recorded event no longer decodes: {item.error.detail}")
                continue
            event = decoded(item)
            if mode == "verify" and (changed := event_columns(event, columns)):
                report.differ(seq, "ledger_events", changed)
            items.append(item)
            # by the id its bytes say, which the rest of the replay knows it by
            sequencer.positions[event.event_id] = seq
            digests[event.event_id] = digest

        async def write(batch_rows: BatchRows, registry: PolicyRegistry, digest: str) -> None:
            # Compared as each piece is written, so memory stays bounded by a batch (or a year-close chunk).
            if mode == "compare":
                await self._impact(audit, batch_rows, report)
            await audit.write_replayed(batch_rows, registry, digest)
            if mode == "verify":  # after the write: the settlements are compared in the shadow they are written to
                await self._check(audit, batch_rows, report)

        # One parameter set per run of consecutive events that share it.
        start = 0
        while start < len(items):
            digest = digests[decoded(items[start]).event_id]
            end = start
            while end < len(items) and digests[decoded(items[end]).event_id] == digest:
                end += 1
            registry = await self._registry(digest, what_if)
            pipeline = Pipeline(audit, registry, sequencer, partial(write, digest=digest), rows_for=unpublished_rows)
            await pipeline.run(items[start:end])
            start = end

    async def _stored(
        self, audit: AuditSession, batch_rows: BatchRows, specs: Sequence[DerivedTable] = DERIVED
    ) -> dict[str, Sequence[Any]]:
        """The ledger rows of the events of `batch_rows` (of a year-close chunk, of its members), by table, in
        the shape they were written in."""
        seqs = list(batch_rows.positions)
        members = batch_rows.members_only
        stored: dict[str, Sequence[Any]] = {}
        for spec in specs:
            if members is None:
                stored[spec.table] = await audit.stored_rows(spec, seqs, None)
            elif spec.by_member:
                stored[spec.table] = await audit.stored_rows(spec, seqs, list(members))
        return stored

    async def _check(self, audit: AuditSession, batch_rows: BatchRows, report: ReplayReport) -> None:
        """The ledger's rows of the events of `batch_rows` compared with their re-derivation, and the settlements
        among them that did not compare equal kept where the next events look settled visits up
        (`db.verification.COMPARED`)."""
        stored = await self._stored(audit, batch_rows)
        unequal: set[tuple] = set()
        for spec in DERIVED:
            if spec.table not in stored:
                continue
            found = stored[spec.table]
            self._seen[spec.table] += len(found)
            expired = expired_ids(spec, found)
            since = await audit.parked_since(expired) if expired else None
            keys = unequal if spec is SETTLEMENTS else None
            deferred: list[tuple[tuple, Sequence[Any]]] = []
            for seq, what, detail in differences(spec, spec.rows(batch_rows), found, since, keys, deferred):
                report.differ(seq, what, detail)
            if deferred:  # rows kept before revision 0016, whose text is the server's
                held = await audit.in_server_text(spec, deferred)
                left = [pair for n, pair in enumerate(deferred) if n not in held]
                for seq, what, detail in judged(spec, left, since, keys):
                    report.differ(seq, what, detail)
        await self._compared(audit, batch_rows, unequal)

    async def _compared(self, audit: AuditSession, batch_rows: BatchRows, unequal: set[tuple]) -> None:
        """Where the next events look settled visits up (`db.verification.COMPARED`): through the last position of
        `batch_rows`, but the settlements of `unequal` ((key, region)), whose re-derivations are kept instead, and
        the positions up to it whose settlements no comparison read: an adoption's, a year close's (its rows are
        read for the members of a chunk alone), an event's that no longer decodes or that a later event of its id
        stands for."""
        if not batch_rows.positions:
            return
        (key,), region = SETTLEMENTS.key_at, SETTLEMENTS.columns.index("region")
        rederived = [row for row in batch_rows.settlements if ((row[key],), row[region]) in unequal] if unequal else []
        compared = batch_rows.positions if batch_rows.members_only is None else {}
        settlements = sorted((k, r) for (k,), r in unequal)
        await self._compare_through(audit, max(batch_rows.positions), compared, settlements, rederived)

    async def _compare_through(
        self,
        audit: AuditSession,
        through: int,
        compared: Collection[int] = (),
        unequal: list[tuple[str, str]] | None = None,
        rederived: list[tuple] | None = None,
    ) -> None:
        """Visits looked up through the position `through`: the positions read up to it and not `compared` are
        kept as such, with the settlements of `unequal` and their `rederived` rows (`_compared`)."""
        uncompared = [seq for seq in self._pending if seq <= through and seq not in compared]
        self._pending = [seq for seq in self._pending if seq > through]
        await audit.compared(through, unequal or [], rederived or [], uncompared)
        self._through = through

    async def _impact(self, audit: AuditSession, batch_rows: BatchRows, report: ReplayReport) -> None:
        spec = SETTLEMENTS
        stored = (await self._stored(audit, batch_rows, (spec,))).get(spec.table, [])
        columns = [spec.columns.index(c) for c in ("settlement_id", "region", "fund_pool", "visit_date", "fund_paid")]
        paid: list[dict[str, Decimal]] = [{}, {}]
        for rows, column in ((stored, 0), (batch_rows.settlements, 1)):
            for row in rows:
                settlement_id, region, pool, visit_date, fund_paid = (row[n] for n in columns)
                key = (region, pool, visit_date.replace(day=1))
                entry = report.fund_impact.setdefault(key, [Decimal("0.00"), Decimal("0.00")])
                entry[column] += fund_paid
                paid[column][settlement_id] = fund_paid
        before, after = paid
        report.changed_settlements += sum(before.get(k) != after.get(k) for k in before.keys() | after.keys())

    async def _projection_rows(self, audit: AuditSession, projection: str, shadow: str, report: ReplayReport) -> None:
        """Which rows of a projection differ, by key, and in which columns."""
        for key, live, replayed, columns in await audit.differing_rows(
            projection, shadow, self.shown_rows, self.regions
        ):
            if not replayed:
                detail = "in the projection but not re-derived"
            elif not live:
                detail = "re-derived but not in the projection"
            else:
                detail = "; ".join(columns)
            report.projection_rows.append(Difference(0, f"{projection} {', '.join(key)}", detail))


_progress: Queue[tuple[int, int]] | None = None  # in a worker: where it reports how many events it has replayed


def _start_worker(progress: Queue[tuple[int, int]] | None) -> None:
    global _progress
    _progress = progress


def _verify_regions(
    db: Database,
    batch_size: int,
    regions: list[str],
    everywhere: list[str] | None,
    index: int,
    elsewhere: list[str] | None = None,
    tell: Callable[[int, int], None] | None = None,
    authority: Authority | None = None,
) -> ReplayReport:
    """`everywhere`: given to the one that checks the chain, but for the streams of `elsewhere`, and counts rows
    of no replayed region; every other walks the streams of its `regions`. In a worker, progress goes on its
    queue; in the calling process, to `tell`."""
    queue = _progress
    if tell is None and queue is not None:
        tell = lambda done, _total: queue.put((index, done))  # noqa: E731
    replayer = Replayer(db, batch_size=batch_size, progress=tell)
    replayer.regions, replayer.check_chain, replayer.stray_outside = regions, everywhere is not None, everywhere
    replayer.streams_elsewhere, replayer.own_streams = elsewhere or [], everywhere is None
    return runtime.run(replayer.verify(authority))


async def _anchor_breaks(db: Database, anchor: tuple[int | str, str], heads: list[Head]) -> list[ChainBreak]:
    """`anchor` checked against the chains of every replayer, as they walked them."""
    replayer = Replayer(db)
    replayer.anchor = anchor
    async with auditing(db, SHADOW) as audit:
        return await replayer._check_anchor(audit, heads)


def worker_pool(workers: int, progress: Queue[tuple[int, int]] | None = None) -> ProcessPoolExecutor:
    """Fresh interpreters (no state inherited from the parent), with the parent's collector settings; each puts
    (its index, events replayed) on `progress`, a queue of the spawn context, as it goes."""
    return job_pool(workers, _start_worker, (progress,))


def verify_in_parallel(
    db: Database,
    batch_size: int,
    workers: int,
    event_counts: dict[str, int],
    progress: Callable[[int, int], None] | None = None,
    anchor: tuple[int | str, str] | None = None,
    authority: Authority | None = None,
) -> ReplayReport:
    """`verify` split by region over `workers` processes, this one and `workers - 1` more: no member, visit,
    payment or year close crosses a region, so each region replays on its own, and each process walks the hash
    chains of the regions it replays. This process also checks the history's chain and what lies in no stream,
    and counts the projection rows of regions with no event; it replays its share on a thread, so that it holds
    no more than a worker does beside the modules it has already loaded. The heads of all the chains are put
    together here, and checked against `anchor`. `progress(done, total)` is told the events replayed by all."""
    regions = {region: count for region, count in event_counts.items() if region != EVERY_REGION}
    groups = balanced(regions, workers)
    if EVERY_REGION in event_counts:  # the adoptions: a few rows, replayed here, not worth a process of their own
        groups[0].append(EVERY_REGION)
    total = sum(event_counts.values())
    queue = multiprocessing.get_context("spawn").Queue() if progress is not None else None
    done = [0] * len(groups)

    def here(replayed: int, _total: int) -> None:
        done[0] = replayed

    others = len(groups) - 1
    with ThreadPoolExecutor(1) as thread, worker_pool(others, queue) if others else nullcontext() as pool:
        everywhere = sorted(event_counts)
        elsewhere = sorted(region for group in groups[1:] for region in group)
        futures = [thread.submit(_verify_regions, db, batch_size, groups[0], everywhere, 0, elsewhere, here, authority)]
        if pool is not None:  # with more than one group
            futures += [
                pool.submit(_verify_regions, db, batch_size, regions, None, index)
                for index, regions in enumerate(groups)
                if index
            ]
        while progress is not None and queue is not None and not all(future.done() for future in futures):
            try:
                index, replayed = queue.get(timeout=0.2)
                done[index] = replayed
            except Empty:
                pass
            progress(sum(done), max(total, sum(done)))
        parts = [future.result() for future in futures]
    if progress is not None:  # what the workers said last may still be on its way
        replayed = sum(part.events for part in parts)
        progress(replayed, max(total, replayed))
    report = ReplayReport()
    for part in parts:
        report.events += part.events
        report.adoptions += part.adoptions
        report.chain_breaks.extend(part.chain_breaks)
        report.heads.extend(part.heads)
        report.signatures = part.signatures if report.signatures is None else report.signatures
        report.differences.extend(part.differences)
        report.difference_count += part.difference_count
        report.projection_rows.extend(part.projection_rows)
        for name, count in part.projection_differences.items():
            report.projection_differences[name] = report.projection_differences.get(name, 0) + count
    report.differences.sort(key=lambda difference: difference.seq)
    report.heads.sort(key=lambda head: head.stream)  # as one replayer lists them: the history's first
    report.head = (sum(h.position for h in report.heads), root_hash(report.heads))
    if anchor is not None:
        report.chain_breaks += runtime.run(_anchor_breaks(db, anchor, report.heads))
    return report
