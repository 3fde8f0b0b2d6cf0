"""Reading the engine's working state for a batch from the projections, and writing a batch back.

The same code serves the live tables and the fresh ones a replay builds aside (`Names.shadow()`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy.dialects import postgresql

from policies.book import Book
from policies.registry import PolicyRegistry
from policies.summary import years_of
from projections import member_year

from ..batch import BatchRows
from ..codec import settlement_from_row, state_from_json
from .tables import metadata


def as_json(value):
    """jsonb arrives decoded on connections set up by SQLAlchemy's asyncpg dialect, as text elsewhere (and where
    the query casts it to text, so that the faster parser reads it)."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def by_region(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(region, id) keys grouped by region."""
    grouped: dict[str, list[str]] = {}
    for region, key in keys:
        grouped.setdefault(region, []).append(key)
    return grouped


def each_key(table: str, id_column: str, columns: str, where: str = "") -> str:
    """A query for the rows of `table` at (region, id) keys given as two arrays ($1 regions, $2 ids), every region
    in one round trip, the table aliased `t`. Each key is looked up on its own through the table's (region, id)
    index: OFFSET 0 keeps the planner from flattening the lookups into a join, which it plans as a scan of the
    whole table."""
    return (
        f"SELECT {columns} FROM unnest($1::text[], $2::text[]) AS k(region, id) CROSS JOIN LATERAL "
        f"(SELECT * FROM {table} t WHERE t.region = k.region AND t.{id_column} = k.id{where} OFFSET 0) AS t"
    )


NOT_REVERSAL = " AND t.reverses IS NULL"


def key_arrays(keys: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    keys = list(keys)
    return [region for region, _ in keys], [key for _, key in keys]


PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")


@dataclass(frozen=True)
class Names:
    member_state: str = "member_state"
    member_year: str = "member_year"
    fund_totals: str = "fund_totals"
    closed_years: str = "closed_years"
    account_payments: str = "account_payments"
    settlements: str = "ledger_settlements"  # where settled visits are looked up (duplicates, reversals)

    @classmethod
    def shadow(cls, prefix: str = "replay_") -> Names:
        return cls(*(prefix + name for name in (*PROJECTIONS, "settlements")))


async def create_shadow(raw, names: Names) -> None:
    """Fresh, empty temporary copies of the projections (and of the settlement lookup) for this session."""
    for live, shadow in zip(
        (*PROJECTIONS, "ledger_settlements"),
        (
            names.member_state,
            names.member_year,
            names.fund_totals,
            names.closed_years,
            names.account_payments,
            names.settlements,
        ),
    ):
        await raw.execute(f"DROP TABLE IF EXISTS {shadow}")
        await raw.execute(f"CREATE TEMPORARY TABLE {shadow} (LIKE {live} INCLUDING DEFAULTS INCLUDING INDEXES)")


async def load_book(
    raw, names: Names, registry: PolicyRegistry, events: Iterable, loaded: dict | None = None, carry=None
) -> Book:
    """A Book holding what `events` can touch: their members and payers, the visits they name, the payment ids
    they use and every closed year. With `loaded`, each member's state is also kept there as read (see
    `BatchRows.loaded`). With `carry` (`ledger.carry.Carry`), what the batch before changed is read from it."""
    book = Book(registry)
    events = list(events)
    if carry is None:  # a year closes only in a batch of its own, never one carried from
        for region, year in await raw.fetch(f"SELECT region, year FROM {names.closed_years}"):
            book.closed_years.add((region, year))
    visit_keys = {(e.region, e.visit_id) for e in events if e.event_type in ("visit.submitted", "visit.reversed")}
    payment_keys = {(e.region, e.payment_id) for e in events if e.event_type == "account.payment_requested"}
    if carry is not None:
        carried = carry.book
        book.closed_years |= carried.closed_years
        for key in visit_keys & carried.visits.keys():
            book.visits[key] = carried.visits[key]
        book.reversed_visits |= visit_keys & carried.reversed_visits
        book.payments |= payment_keys & carried.payments
        visit_keys -= carried.visits.keys()
        payment_keys -= carried.payments
    if visit_keys:
        rows = await raw.fetch(
            each_key(names.settlements, "visit_id", "t.record::text, t.deltas::text, t.event_id", NOT_REVERSAL),
            *key_arrays(visit_keys),
        )
        for record, deltas, event_id in rows:
            settlement = settlement_from_row(orjson.loads(record), orjson.loads(deltas), event_id)
            book.visits[(settlement.region, settlement.visit_id)] = settlement
    if book.visits:
        ids = {s.settlement_id: key for key, s in book.visits.items()}
        for (reversed_id,) in await raw.fetch(
            f"SELECT reverses FROM {names.settlements} WHERE reverses = ANY($1::text[])", list(ids)
        ):
            book.reversed_visits.add(ids[reversed_id])
    if payment_keys:
        for region, payment_id in await raw.fetch(
            each_key(names.account_payments, "payment_id", "t.region, t.payment_id"), *key_arrays(payment_keys)
        ):
            book.payments.add((region, payment_id))
    member_keys = set()
    for event in events:
        member_id = getattr(event, "member_id", None)
        if member_id is not None:
            member_keys.add((event.region, member_id))
        payer = getattr(event, "account_payer_id", None)
        if payer:
            member_keys.add((event.region, payer))
    member_keys.update((s.region, s.payer_id) for s in book.visits.values() if s.payer_id)
    if carry is not None:
        for key in member_keys & carry.book.members.keys():
            book.members[key] = carry.book.members[key]
            if loaded is not None and key in carry.loaded:
                loaded[key] = carry.loaded[key]
    await load_members(raw, names, book, member_keys, loaded)
    return book


async def load_members(raw, names: Names, book: Book, keys, loaded: dict | None = None) -> None:
    keys = [key for key in keys if key not in book.members]
    if not keys:
        return
    if loaded is None:
        query = each_key(names.member_state, "member_id", "t.state::text, NULL")
    else:
        query = each_key(names.member_state, "member_id", "t.state::text, e.params_digest")
        query += " JOIN ledger_events e ON e.seq = t.last_seq"
    for state, digest in await raw.fetch(query, *key_arrays(keys)):
        data = orjson.loads(state)
        member = state_from_json(data)
        key = (member.region, member.member_id)
        book.members[key] = member
        if loaded is not None:
            loaded[key] = (data, digest)


async def region_member_chunks(raw, names: Names, region: str, size: int):
    """The region's member states in member_id order, `size` at a time (a year close walks them all)."""
    after = ""
    while True:
        rows = await raw.fetch(
            f'SELECT member_id, state::text FROM {names.member_state} WHERE region = $1 AND member_id COLLATE "C" > $2 '
            f'ORDER BY member_id COLLATE "C" LIMIT $3',
            region,
            after,
            size,
        )
        if not rows:
            return
        after = rows[-1][0]
        yield [state_from_json(as_json(state)) for _, state in rows]


async def _upsert(raw, table: str, columns: tuple[str, ...], key: tuple[str, ...], rows: list[tuple]) -> None:
    """One INSERT ... SELECT FROM unnest(one array a column) ... ON CONFLICT: a single round trip whatever the
    number of rows, where a statement a row would cost one each (and staging through a table, four)."""
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    await raw.execute(
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({array_parameters(table, columns)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}",
        *(list(column) for column in zip(*rows)),
    )


def array_parameters(table: str, columns: tuple[str, ...]) -> str:
    """`$1::type[], $2::type[], ...`: one array parameter a column, for `unnest()`."""
    return ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(column_types(table, columns), start=1))


@functools.cache
def column_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """The SQL types of a table's columns, from the schema's definition (a replay's temporary copy of a
    projection is named with a prefix and has the same columns)."""
    live = [table] if table in metadata.tables else [n for n in PROJECTIONS if table.endswith("_" + n)]
    if not live:
        raise ValueError(f"{table} is not a table of the schema or a copy of a projection")
    definition = metadata.tables[live[0]]
    return [definition.c[column].type.compile(dialect=postgresql.dialect()) for column in columns]


async def _write_years(raw, names: Names, rows: BatchRows, registry: PolicyRegistry, params_digest: str) -> None:
    whole_rows, year_rows, whole = rows.year_rows(registry, params_digest)
    # A member's years rewritten whole: no year survives that its state no longer has.
    for region, members in by_region(whole).items():
        await raw.execute(
            f"DELETE FROM {names.member_year} WHERE region = $1 AND member_id = ANY($2::text[])", region, members
        )
    if whole_rows:
        await raw.copy_records_to_table(names.member_year, records=whole_rows, columns=member_year.COLUMNS)
    if year_rows:
        await _upsert(raw, names.member_year, member_year.COLUMNS, ("region", "member_id", "year"), year_rows)


async def write_member_years(raw, names: Names, registry_of: Callable, chunk: int = 5_000) -> None:
    """member_year from every member's final state, under the parameters in force at its last event."""
    after = ("", "")
    while True:
        found = await raw.fetch(
            f"SELECT m.region, m.member_id, m.state::text, e.params_digest FROM {names.member_state} m "
            f'JOIN ledger_events e ON e.seq = m.last_seq WHERE (m.region, m.member_id COLLATE "C") > ($1, $2) '
            f'ORDER BY m.region, m.member_id COLLATE "C" LIMIT $3',
            after[0],
            after[1],
            chunk,
        )
        if not found:
            return
        after = (found[-1][0], found[-1][1])
        records = []
        for _, _, state, digest in found:
            member = state_from_json(as_json(state))
            records.extend(member_year.rows(member, years_of(member), await registry_of(digest)))
        await raw.copy_records_to_table(names.member_year, records=records, columns=member_year.COLUMNS)


async def write_projections(
    raw, names: Names, rows: BatchRows, registry: PolicyRegistry, params_digest: str | None = None
) -> None:
    """Without `params_digest` (the digest of `registry`'s parameters), member_year is left to
    `write_member_years` at the end of a replay: its rows are a function of each member's final state alone, so
    writing them once gives the same table."""
    states = rows.state_rows()
    if states:
        await _upsert(
            raw, names.member_state, ("region", "member_id", "state", "last_seq"), ("region", "member_id"), states
        )
    if params_digest is not None:
        await _write_years(raw, names, rows, registry, params_digest)
    fund = rows.fund.rows()
    if fund:
        await raw.executemany(
            f"INSERT INTO {names.fund_totals} AS t (region, month, pool, fund_paid, settlements, reversals) "
            f"VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (region, month, pool) DO UPDATE SET "
            f"fund_paid = t.fund_paid + excluded.fund_paid, settlements = t.settlements + excluded.settlements, "
            f"reversals = t.reversals + excluded.reversals",
            fund,
        )
    if rows.closed_years:
        await raw.executemany(
            f"INSERT INTO {names.closed_years} (region, year, seq) VALUES ($1, $2, $3)", rows.closed_years
        )
    if rows.payments:
        await raw.copy_records_to_table(
            names.account_payments, records=rows.payments, columns=("region", "payment_id", "seq")
        )


SETTLEMENT_COLUMNS = (
    "settlement_id",
    "seq",
    "event_id",
    "region",
    "member_id",
    "visit_id",
    "visit_date",
    "policy_id",
    "fund_pool",
    "fund_paid",
    "reverses",
    "record",
    "deltas",
)
MOVEMENT_COLUMNS = (
    "movement_id",
    "seq",
    "region",
    "member_id",
    "kind",
    "purpose",
    "amount",
    "balance_after",
    "policy_id",
    "record",
)
INCENTIVE_COLUMNS = ("seq", "region", "member_id", "year", "record")
REJECTION_COLUMNS = ("seq", "event_id", "source", "reason", "detail", "payload", "payload_digest", "policy_id")
PARKED_COLUMNS = ("event_id", "region", "member_id", "payload", "source", "parked_at", "arrival")


async def write_settlements(raw, table: str, rows: BatchRows) -> None:
    if rows.settlements:
        await raw.copy_records_to_table(table, records=rows.settlements, columns=SETTLEMENT_COLUMNS)


async def write_rejections(raw, rejections: list[tuple]) -> int:
    """In the batch's order; returns the last rejection_id given (a batch under the append lock is the only
    writer, so that is the table's highest)."""
    arrays = array_parameters("ledger_rejections", REJECTION_COLUMNS)
    ids = await raw.fetch(
        f"INSERT INTO ledger_rejections ({', '.join(REJECTION_COLUMNS)}) SELECT {', '.join(REJECTION_COLUMNS)} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS r({', '.join(REJECTION_COLUMNS)}, n) ORDER BY n "
        f"RETURNING rejection_id",
        *(list(column) for column in zip(*rejections)),
    )
    return max(row[0] for row in ids)


async def write_ledger(raw, rows: BatchRows) -> int | None:
    """The ledger rows of a batch, after its events (ledger_events) are in. Returns the last rejection_id written,
    if the batch refused anything."""
    await write_settlements(raw, "ledger_settlements", rows)
    if rows.movements:
        await raw.copy_records_to_table("ledger_movements", records=rows.movements, columns=MOVEMENT_COLUMNS)
    if rows.incentives:
        await raw.copy_records_to_table("ledger_incentives", records=rows.incentives, columns=INCENTIVE_COLUMNS)
    last_rejection = await write_rejections(raw, rows.rejections) if rows.rejections else None
    if rows.parked:
        await raw.copy_records_to_table("parked_events", records=rows.parked, columns=PARKED_COLUMNS)
    return last_rejection
