"""What replay reads and writes (`ledger.replay`): the ledger's events in order, the rows derived from them, the
projections beside fresh ones rebuilt aside, the chain, the parameter sets and their adoptions, the waiting room
and the producers' signatures, all on one connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from policies.member import MemberState
from policies.registry import PolicyRegistry

from ..batch import BatchRows
from ..chain import ChainBreak
from ..streams import NO_REGION, Head
from . import adoptions, signatures, streams
from .connect import close_pool, lent, service_pool
from .connection import Raw
from .event_store import transaction
from .held_members import HeldMembers
from .projection_store import (
    PROJECTIONS,
    STATE_COLUMNS,
    YEARS_CHUNK,
    Names,
    add_projections,
    add_settlements,
    create_shadow,
    region_member_chunks,
    write_member_years,
    write_years_of,
)
from .recorder import PostgresSession
from .server import Database
from .verification import (
    COMPARED,
    COMPARED_TO,
    PARKED_ROWS,
    PARKED_SINCE,
    compared_settlements,
    in_server_text,
    position_bounds,
    projection_rows,
    stored_rows,
)
from .writes import Writes

if TYPE_CHECKING:
    from ..verify_rows import DerivedTable

# Member states written a statement at a time when the held ones go to the table (`PostgresAudit.write_held`).
HELD_CHUNK = 20_000


class PostgresAudit(PostgresSession):
    """Replay's session (`recorder.AuditSession`) on a connection of its own; what it settles reads, and what it
    writes goes to, the projections named by `names`. Once its member_state table is empty (made afresh, or
    emptied), the member states it settles are held in its memory between batches and written to the table when
    it is read (`db.held_members`)."""

    def __init__(self, raw: Raw, names: Names, reader: Raw | None = None):
        super().__init__(raw, names)
        self.reader = reader  # a connection of its own, reading the events ahead (`events_after(ahead=True)`)
        self.shadow_settlements: str | None = None  # where `compared` keeps settlements (`look_up_compared`)

    async def region_members(self, region: str, size: int) -> AsyncIterator[list[MemberState]]:
        """The region's member states in member_id order, `size` at a time: while every state is held, the held
        ones (a year close changes only those it evaluates, which its rows hold again); otherwise from the table,
        the held ones not yet in it written first."""
        if self.holding is not None and self.holding.complete:
            members = self.holding.of_region(region)
            for start in range(0, len(members), size):
                yield members[start : start + size]
            return
        await self.write_held()
        async for chunk in region_member_chunks(self.raw, self.names, region, size):
            yield chunk

    async def write_held(self, chunk: int = HELD_CHUNK) -> None:
        """The member states held and not yet in the table written to it (they stay held)."""
        if self.holding is None:
            return
        rows = self.holding.to_write()
        async with nullcontext() if self.raw.is_in_transaction() else transaction(self.raw):
            for start in range(0, len(rows), chunk):
                writes = Writes(large=True)
                writes.upsert(
                    self.names.member_state, STATE_COLUMNS, ("region", "member_id"), rows[start : start + chunk]
                )
                await writes.run(self.raw)

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return transaction(self.raw)

    async def lock_writers(self, regions: list[str] | None) -> None:
        """The append locks of `regions` (of every region's stream, and of input that names none, when None), in
        the writers' order (`streams.locks`)."""
        if regions is None:
            regions = [NO_REGION, *(row[0] for row in await self.raw.fetch("SELECT region FROM ledger_streams"))]
        if statements := streams.locks(regions):
            await self.raw.execute(statements)

    async def empty_projections(self) -> None:
        for table in PROJECTIONS:
            await self.raw.execute(f"TRUNCATE {table}")
        if self.names.member_state == Names().member_state:  # the live table, just emptied
            self.holding = HeldMembers()

    async def create_shadow(self, shadow: Names) -> None:
        """The shadow settlements keep the unique indexes of the ledger's, which replay looks settlements up by
        (`settlement_id`, a visit's, a reversal's) and which refuse what the ledger refuses; not the others, which
        serve reads by member, position and day that replay never makes, and would cost every row it writes."""
        await create_shadow(self.raw, shadow)
        if self.names.member_state == shadow.member_state:  # its own, just made
            self.holding = HeldMembers()
        for (index,) in await self.raw.fetch(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = $1::regclass AND NOT indisunique",
            shadow.settlements,
        ):
            await self.raw.execute(f"DROP INDEX {index}")

    async def look_up_compared(self, shadow: Names) -> None:
        """Settled visits looked up among the ledger's settlements compared so far, and the re-derived ones that
        compared unequal (`db.verification.COMPARED`), which `compared` keeps in `shadow`'s settlements: the only
        settlements this session writes from now on."""
        for statement in compared_settlements(shadow.settlements):
            await self.raw.execute(statement)
        self.names = replace(self.names, settlements=COMPARED)
        self.shadow_settlements = shadow.settlements

    async def compared(
        self, through: int, unequal: list[tuple[str, str]], rederived: list[tuple], uncompared: list[int]
    ) -> None:
        """The ledger's settlements compared through the position `through`: `unequal`, the (key, region) of those
        that did not compare equal on either side, `rederived`, the re-derived settlements among them, and
        `uncompared`, the positions up to it whose settlements no comparison read."""
        assert self.shadow_settlements is not None, "look_up_compared first"
        if rederived:
            writes = Writes.sized(len(rederived))
            add_settlements(writes, self.shadow_settlements, BatchRows(settlements=rederived))
            await writes.run(self.raw)
        keys, regions = [key for key, _ in unequal], [region for _, region in unequal]
        await self.raw.execute(COMPARED_TO, through, keys, regions, uncompared)

    async def event_count(self) -> int:
        return await self.raw.fetchval("SELECT count(*) FROM ledger_events")

    async def events_after(
        self, after: int, limit: int, regions: list[str] | None, columns: str, ahead: bool = False
    ) -> list:
        """(seq, params_digest, source, payload, *`columns`) of up to `limit` events after `after` (of
        `regions`, every region when None), in sequence order. `ahead`: on the reader's connection, outside this
        session's transaction, so that it may run while the session settles and writes the batch before."""
        raw = self.reader if ahead and self.reader is not None else self.raw
        select = f"SELECT seq, params_digest, source, payload, {columns} FROM ledger_events "
        of_regions = "($3::text[] IS NULL OR region = ANY($3::text[]))"
        return await streams.next_rows(
            raw,
            limit,
            (select + f"WHERE seq > $1 AND seq <= $1 + $2 AND {of_regions} ORDER BY seq", [after, limit, regions]),
            (select + f"WHERE seq > $1 AND {of_regions} ORDER BY seq LIMIT $2", [after, limit, regions]),
        )

    async def hash_at(self, seq: int) -> bytes | None:
        found = await self.raw.fetchval("SELECT hash FROM ledger_events WHERE seq = $1", seq)
        return None if found is None else bytes(found)

    async def verify_streams(
        self, regions: list[str] | None = None, elsewhere: list[str] | None = None
    ) -> tuple[list[ChainBreak], list[Head]]:
        return await streams.verify_streams(self.raw, regions, elsewhere or ())

    async def heads_at(self, positions: list[tuple[str, int]]) -> list[Head] | None:
        return await streams.heads_at(self.raw, positions)

    async def kept_heads(self) -> list[list[tuple[str, int]]]:
        return [
            [(head["region"], head["seq"]) for head in orjson.loads(kept)]
            for (kept,) in await self.raw.fetch("SELECT stream_heads::text FROM console_verifications ORDER BY 1")
        ]

    async def strays(self, projection: str, outside: list[str]) -> int:
        """Rows of `projection` of no region in `outside`."""
        return await self.raw.fetchval(f"SELECT count(*) FROM {projection} WHERE region <> ALL($1::text[])", outside)

    async def derived_count(self, table: str, where: str, regions: list[str] | None) -> int:
        """Rows of the ledger table `table` (aliased `t`, narrowed by `where`) derived from events of `regions`."""
        return await self.raw.fetchval(
            f"SELECT count(*) FROM {table} t JOIN ledger_events e ON e.seq = t.seq AND e.region = t.region "
            f"WHERE ($1::text[] IS NULL OR e.region = ANY($1::text[])){where}",
            regions,
        )

    async def stored_rows(self, spec: DerivedTable, seqs: list[int], members: list[str] | None) -> list:
        """The rows of the ledger table of `spec` (`verify_rows.DerivedTable`) at the positions `seqs` (of
        `members`), in the shape they were written in."""
        select = stored_rows(spec.table, spec.columns, spec.where, members is not None)
        if members is None:
            return await self.raw.fetch(select, seqs, *position_bounds(seqs))
        return await self.raw.fetch(select, seqs, *position_bounds(seqs), members)

    async def in_server_text(self, spec: DerivedTable, pairs: list[tuple[tuple, Sequence[Any]]]) -> set[int]:
        """Of (re-derived row, stored row) `pairs` of `spec`'s table that differ in their JSON columns' text alone,
        the indexes of those whose stored texts are the server's text of the re-derived values
        (`db.verification.in_server_text`)."""
        arrays = [[pair[side][n] for pair in pairs] for n in spec.json for side in (0, 1)]
        found = await self.raw.fetch(in_server_text(len(spec.json)), *arrays)
        return {row[0] - 1 for row in found}

    async def parked_rows(self, after: tuple, limit: int) -> list:
        return await self.raw.fetch(PARKED_ROWS, *after, limit)

    async def parked_since(self, event_ids: list[str]) -> dict[str, datetime]:
        return dict(await self.raw.fetch(PARKED_SINCE, event_ids))

    async def parameter_sets(self) -> list[tuple[str, str]]:
        return [tuple(row) for row in await self.raw.fetch("SELECT digest, content FROM parameter_sets")]

    async def parameters(self, digest: str) -> str | None:
        return await self.raw.fetchval("SELECT content FROM parameter_sets WHERE digest = $1", digest)

    async def adoptions_between(self, after: int, through: int) -> list[tuple[int, str]]:
        return await adoptions.adoptions_between(self.raw, after, through)

    async def adoption_rows(self) -> list[tuple[int, str, str, str | None]]:
        return await adoptions.adoption_rows(self.raw)

    async def differing_rows(self, projection: str, shadow: str, limit: int, regions: list[str] | None) -> list:
        """(key, live, replayed, columns) of up to `limit` rows of `projection` that differ from `shadow`."""
        return await self.raw.fetch(projection_rows(projection, shadow, limit), regions)

    async def count_differences(self, live: str, shadow: str, regions: list[str] | None) -> int:
        mine = f"(SELECT * FROM {live} WHERE $1::text[] IS NULL OR region = ANY($1::text[]))"
        return await self.raw.fetchval(
            f"SELECT (SELECT count(*) FROM ({mine} EXCEPT ALL SELECT * FROM {shadow}) a) + "
            f"(SELECT count(*) FROM (SELECT * FROM {shadow} EXCEPT ALL {mine}) b)",
            regions,
        )

    async def write_replayed(self, rows: BatchRows, registry: PolicyRegistry, params_digest: str) -> None:
        """A replayed batch's settlements and projections (member_year is left to `write_member_years`); a verify's
        settlements only as `compared` keeps them, those that compared unequal."""
        writes = Writes.sized(rows.size())
        if self.shadow_settlements is None:  # else kept by `compared`, those that compared unequal alone
            add_settlements(writes, self.names.settlements, rows)
        add_projections(writes, self.names, rows, registry, params_digest, years=False, held=self.holding)
        await writes.run(self.raw)

    async def write_member_years(self, registry_of: Callable[[str], Awaitable[PolicyRegistry]]) -> None:
        """member_year from the member states, all of them in the table first (`write_held`), where the
        comparison of the projections reads them next; from the states held (all of them, while every state is),
        the others read from the table."""
        await self.write_held()
        if self.holding is None or not self.holding.complete:
            await write_member_years(self.raw, self.names, registry_of, held=self.holding)
            return
        members = self.holding.members()
        for start in range(0, len(members), YEARS_CHUNK):
            await write_years_of(self.raw, self.names, members[start : start + YEARS_CHUNK], registry_of)

    async def unsigned_since_signing(self) -> list[tuple[int, str]]:
        return await signatures.unsigned_since_signing(self.raw)

    def stored_signatures(self) -> AsyncIterator[list]:
        return signatures.stored_signatures(self.raw)


async def event_counts(raw: Raw) -> dict[str, int]:
    """How many events the ledger holds, by region (what a verify split by region shares out)."""
    return dict(await raw.fetch("SELECT region, count(*) FROM ledger_events GROUP BY region"))


# A replay writes its re-derived settlements and projections to temporary tables (`create_shadow`), which live in
# the session's own buffers, not the server's shared ones. PostgreSQL gives a session 8 MB of them unless set; a
# verify of a ledger of a million events writes some hundreds of MB to each worker's tables and probes their
# indexes every batch, which at 8 MB are read back through the kernel page by page. 64 MB keeps the indexes' pages
# in memory: the server spent about 16 % less CPU on that verify (docs/benchmarks.md). A session takes these
# buffers only as its temporary tables fill them. Raised to this, never lowered: a larger setting of the server,
# database or role stays. Set by a statement, before the session's first temporary table, rather than as a
# parameter of the connection, which a connection pooler in between may refuse.
SHADOW_BUFFERS = "64MB"
RAISE_SHADOW_BUFFERS = (
    "SELECT set_config('temp_buffers', $1, false) "
    "WHERE pg_size_bytes(current_setting('temp_buffers')) < pg_size_bytes($1)"
)


@asynccontextmanager
async def auditing(db: Database, names: Names) -> AsyncIterator[PostgresAudit]:
    """A replay's session on a connection of its own, writing to the projections named by `names`, and a second
    connection that reads the ledger's events ahead of it."""
    pool = await service_pool(db, size=2)
    try:
        async with lent(pool) as raw, lent(pool) as reader:
            await raw.execute(RAISE_SHADOW_BUFFERS, SHADOW_BUFFERS)
            yield PostgresAudit(raw, names, reader)
    finally:
        await close_pool(pool)
