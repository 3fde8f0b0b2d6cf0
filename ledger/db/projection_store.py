"""Reading the engine's working state for a batch from the projections, and writing a batch back.

The same code serves the live tables and the fresh ones a replay builds aside (`Names.shadow()`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import orjson

from policies.book import Book
from policies.member import MemberState
from policies.registry import PolicyRegistry
from policies.summary import years_of
from projections import member_year

from ..batch import MOVEMENT_ROW, BatchRows
from ..carry import Carry
from ..codec import STATE_KEYS, settlement_from_row, state_from_bytes
from ..contract import EventBase
from .connection import Raw
from .writes import Writes

if TYPE_CHECKING:
    from ..contract.account import PaymentRequested
    from ..contract.visit import VisitReversed, VisitSubmitted
    from .held_members import HeldMembers


def as_json(value: Any) -> Any:
    """jsonb arrives decoded on the service's connections (`db.connect`), as text elsewhere (and where the query
    casts it to text, so that the faster parser reads it)."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def by_region(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(region, id) keys grouped by region."""
    grouped: dict[str, list[str]] = {}
    for region, key in keys:
        grouped.setdefault(region, []).append(key)
    return grouped


def each_key(table: str, id_column: str, columns: str, where: str = "", first: int = 1) -> str:
    """A query for the rows of `table` at (region, id) keys given as two arrays (parameters `first` and the one
    after it: regions, ids), every region in one round trip, the table aliased `t`. Each key is looked up on its
    own through the table's (region, id) index: OFFSET 0 keeps the planner from flattening the lookups into a
    join, which it plans as a scan of the whole table."""
    return (
        f"SELECT {columns} FROM unnest(${first}::text[], ${first + 1}::text[]) AS k(region, id) CROSS JOIN LATERAL "
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


async def create_shadow(raw: Raw, names: Names) -> None:
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


async def earlier_shapes(raw: Raw, names: Names) -> int:
    """How many member_state rows lack a key the member state has now (`codec.STATE_KEYS`): rows an earlier
    release wrote, which only a rebuild from the ledger brings to the current shape. A scan of the table, once at
    start-up."""
    return await raw.fetchval(
        f"SELECT count(*) FROM {names.member_state} WHERE NOT (state ?& $1::text[])", list(STATE_KEYS)
    )


Keys = set[tuple[str, str]]  # (region, id)
_NAME_VISITS = frozenset({"visit.submitted", "visit.reversed"})


def event_keys(events: Sequence[EventBase]) -> tuple[Keys, Keys, Keys]:
    """The (region, id) keys of the visits, payment ids and members `events` can touch, as (visits, payments,
    members)."""
    # asked of their types, not their classes: an event may be the fast decoder's Struct of it, which reads alike
    visit_keys: Keys = {
        (e.region, cast("VisitSubmitted | VisitReversed", e).visit_id) for e in events if e.event_type in _NAME_VISITS
    }
    payment_keys: Keys = {
        (e.region, cast("PaymentRequested", e).payment_id)
        for e in events
        if e.event_type == "account.payment_requested"
    }
    member_keys: Keys = set()
    for event in events:
        member_id = getattr(event, "member_id", None)
        if member_id is not None:
            member_keys.add((event.region, member_id))
        payer = account_payer(event)
        if payer:
            member_keys.add((event.region, payer))
    return visit_keys, payment_keys, member_keys


def book_keys(book: Book, events: list[EventBase], carry: Carry | None = None) -> tuple[Keys, Keys, Keys]:
    """`event_keys`. With `carry`, what the batch before holds of them (and its closed years) is put in `book`
    first, and the visits and payments it holds are left out of the keys to read."""
    visit_keys, payment_keys, member_keys = event_keys(events)
    if carry is not None:
        carried = carry.book
        book.closed_years |= carried.closed_years
        for key in visit_keys & carried.visits.keys():
            book.visits[key] = carried.visits[key]
        book.reversed_visits |= visit_keys & carried.reversed_visits
        book.payments |= payment_keys & carried.payments
        visit_keys -= carried.visits.keys()
        payment_keys -= carried.payments
    return visit_keys, payment_keys, member_keys


@dataclass
class Ahead:
    """What a session read ahead for the next `load_book` of its batch, in the round trip of another read
    (`db.parking.held_and_ahead`): the visit and member keys looked up, and the rows found of them."""

    visits: Keys
    members: Keys
    rows: list


def book_lookups(names: Names, visit_keys: Keys, members: Keys, with_digest: bool, first: int) -> tuple[str, list]:
    """One query for the visits and the member states at the keys (rows ('visit', record, deltas, event id) and
    ('member', state, digest, NULL)), its parameters numbered from `first`, and its arguments; "" when there is
    nothing to look up."""
    lookups: list[str] = []
    arguments: list[list[str]] = []
    if visit_keys:
        columns = "'visit', t.record::text, t.deltas::text, t.event_id"
        lookups.append(each_key(names.settlements, "visit_id", columns, NOT_REVERSAL, first=first + len(arguments)))
        arguments += key_arrays(visit_keys)
    if members:
        lookups.append(_member_lookup(names, with_digest, first=first + len(arguments), tagged=True))
        arguments += key_arrays(members)
    return " UNION ALL ".join(f"({q})" for q in lookups), arguments


def take_rows(book: Book, rows: Iterable[tuple], loaded: dict | None, only: tuple[Keys, Keys] | None = None) -> None:
    """Put the rows of `book_lookups` in `book`; with `only` (visit keys, member keys), those of these keys alone."""
    for kind, first, second, third in rows:
        if kind == "visit":
            settlement = settlement_from_row(orjson.loads(first), orjson.loads(second), third)
            if only is None or (settlement.region, settlement.visit_id) in only[0]:
                book.visits[(settlement.region, settlement.visit_id)] = settlement
        elif kind == "member":
            keep_member(book, first, second, loaded, None if only is None else only[1])


async def load_book(
    raw: Raw,
    names: Names,
    registry: PolicyRegistry,
    events: Iterable[EventBase],
    loaded: dict | None = None,
    carry: Carry | None = None,
    ahead: Ahead | None = None,
    held: HeldMembers | None = None,
) -> Book:
    """A Book holding what `events` can touch: their members and payers, the visits they name, the payment ids
    they use and every closed year. With `loaded`, each member's state is also kept there as read (see
    `BatchRows.loaded`). With `carry` (`ledger.carry.Carry`), what the batch before changed is read from it. With
    `ahead`, what was read ahead of it is taken (with a digest, for `loaded`) and not looked up again. With `held`,
    the member states held in memory are taken from there (`db.held_members`), and only the others looked up."""
    book = Book(registry)
    events = list(events)
    if carry is None:  # a year closes only in a batch of its own, never one carried from
        for region, year in await raw.fetch(f"SELECT region, year FROM {names.closed_years}"):
            book.closed_years.add((region, year))
    visit_keys, payment_keys, member_keys = book_keys(book, events, carry)
    carried_members(book, member_keys, carry, loaded)
    members = {key for key in member_keys if key not in book.members}
    if held is not None:
        members = held.take(book, members, loaded)
    if ahead is not None:
        # What these events name, and the batch before does not hold: not what only a repeat of the batch named.
        take_rows(book, ahead.rows, loaded, only=(visit_keys, members))
        visit_keys -= ahead.visits
        members -= ahead.members
    # The visits named and the members: one round trip.
    query, arguments = book_lookups(names, visit_keys, members, loaded is not None, first=1)
    if query:
        take_rows(book, await raw.fetch(query, *arguments), loaded)
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
    # the account payers of the visits found, which a reversal pays back
    payers = {(s.region, s.payer_id) for s in book.visits.values() if s.payer_id} - member_keys
    carried_members(book, payers, carry, loaded)
    if held is not None:
        payers = held.take(book, [key for key in payers if key not in book.members], loaded)
    await load_members(raw, names, book, payers, loaded)
    return book


def account_payer(event: EventBase) -> str | None:
    """The member whose account pays for a visit, if the event is one that names one. Asked of its type's fields
    first: a contract model asked for a field it lacks raises inside (and catches) an AttributeError, which cost
    more than the rest of `load_book`'s look at the event."""
    fields = getattr(type(event), "model_fields", None)
    if fields is not None and "account_payer_id" not in fields:
        return None
    return getattr(event, "account_payer_id", None)


def carried_members(book: Book, keys: Keys, carry: Carry | None, loaded: dict | None) -> None:
    if carry is not None:
        for key in keys & carry.book.members.keys():
            book.members[key] = carry.book.members[key]
            if loaded is not None and key in carry.loaded:
                loaded[key] = carry.loaded[key]


def _member_lookup(names: Names, with_digest: bool, first: int = 1, tagged: bool = False) -> str:
    """Member states at (region, member_id) keys, with the parameter digest of each one's last event (or NULL);
    `tagged`, as rows ('member', state, digest, NULL) beside the visits' in `load_book`."""
    columns = f"t.state::text, {'t.params_digest' if with_digest else 'NULL::text'}"
    if tagged:
        columns = f"'member', {columns}, NULL::text"
    return each_key(names.member_state, "member_id", columns, first=first)


def keep_member(
    book: Book, state: str | bytes, digest: str | None, loaded: dict | None, only: Keys | None = None
) -> None:
    member = state_from_bytes(state)
    key = (member.region, member.member_id)
    if only is not None and key not in only:
        return
    book.members[key] = member
    if loaded is not None:
        loaded[key] = digest


async def load_members(
    raw: Raw, names: Names, book: Book, keys: Iterable[tuple[str, str]], loaded: dict | None = None
) -> None:
    keys = [key for key in keys if key not in book.members]
    if not keys:
        return
    for state, digest in await raw.fetch(_member_lookup(names, loaded is not None), *key_arrays(keys)):
        keep_member(book, state, digest, loaded)


async def region_member_chunks(raw: Raw, names: Names, region: str, size: int) -> AsyncIterator[list[MemberState]]:
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
        yield [state_from_bytes(state) for _, state in rows]


def add_years(writes: Writes, names: Names, rows: BatchRows, registry: PolicyRegistry, params_digest: str) -> None:
    """A member's years rewritten whole leave no year behind that its state no longer has. The rows go as a
    document (`db.writes`): eleven of their nineteen values are numeric."""
    whole_rows, year_rows, whole = rows.year_rows(registry, params_digest)
    key = ("region", "member_id", "year")
    if writes.large:  # a statement at a time: the whole members' rows go, and come back by COPY
        for region, members in by_region(whole).items():
            writes.add(
                f"DELETE FROM {names.member_year} WHERE region = {writes.parameter(region, 'text')} "
                f"AND member_id = ANY({writes.parameter(members, 'text[]')})"
            )
        writes.insert(names.member_year, member_year.COLUMNS, whole_rows, document=True)
        writes.upsert(names.member_year, member_year.COLUMNS, key, year_rows, document=True)
        return
    # One statement: no write may meet another on a row, so the years kept are upserted and only the others go.
    writes.upsert(names.member_year, member_year.COLUMNS, key, whole_rows + year_rows, document=True)
    for region, members in by_region(whole).items():
        kept = [row[1:3] for row in whole_rows if row[0] == region]
        region_is = writes.parameter(region, "text")
        members_are = writes.parameter(members, "text[]")
        kept_members = writes.parameter([member for member, _ in kept], "text[]")
        kept_years = writes.parameter([year for _, year in kept], "int[]")
        writes.add(
            f"DELETE FROM {names.member_year} t WHERE t.region = {region_is} AND t.member_id = ANY({members_are}) "
            f"AND NOT EXISTS (SELECT FROM unnest({kept_members}, {kept_years}) AS k(member_id, year) "
            "WHERE k.member_id = t.member_id AND k.year = t.year)"
        )


# Members whose member_year rows go in one statement (`write_member_years`).
YEARS_CHUNK = 5_000


async def write_member_years(
    raw: Raw,
    names: Names,
    registry_of: Callable[[str], Awaitable[PolicyRegistry]],
    chunk: int = YEARS_CHUNK,
    held: HeldMembers | None = None,
) -> None:
    """member_year from every member's final state, under the parameters in force at its last event. With `held`
    (every held state in the table as held), a member held is taken from there rather than parsed again."""
    after = ("", "")
    while True:
        found = await raw.fetch(
            f"SELECT m.region, m.member_id, m.state::text, m.params_digest FROM {names.member_state} m "
            f'WHERE (m.region, m.member_id COLLATE "C") > ($1, $2) '
            f'ORDER BY m.region, m.member_id COLLATE "C" LIMIT $3',
            after[0],
            after[1],
            chunk,
        )
        if not found:
            return
        after = (found[-1][0], found[-1][1])
        members = [
            (held and held.get((region, member_id))) or (state_from_bytes(state), digest)
            for region, member_id, state, digest in found
        ]
        await write_years_of(raw, names, members, registry_of)


async def write_years_of(
    raw: Raw,
    names: Names,
    members: Iterable[tuple[MemberState, str]],
    registry_of: Callable[[str], Awaitable[PolicyRegistry]],
) -> None:
    """The member_year rows of these member states, each under the parameters of its digest, in one statement."""
    records = []
    for member, digest in members:
        records.extend(member_year.rows(member, years_of(member), await registry_of(digest)))
    writes = Writes()
    writes.insert(names.member_year, member_year.COLUMNS, records, document=True)
    await writes.run(raw)


FUND_COLUMNS = ("region", "month", "pool", "fund_paid", "settlements", "reversals")
FUND_INCREMENTS = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in FUND_COLUMNS[3:])


STATE_COLUMNS = ("region", "member_id", "state", "last_seq", "params_digest")


def add_projections(
    writes: Writes,
    names: Names,
    rows: BatchRows,
    registry: PolicyRegistry,
    params_digest: str,
    years: bool = True,
    held: HeldMembers | None = None,
) -> None:
    """`params_digest`: the digest of `registry`'s parameters, which the batch's events were settled under. Without
    `years`, member_year is left to `write_member_years` at the end of a replay: its rows are a function of each
    member's final state alone, so writing them once gives the same table. With `held`, the batch's member states
    are held in memory, and only those it lets go are written (`db.held_members`)."""
    if held is None:
        states = [(*row, params_digest) for row in rows.state_rows()]
    else:
        touched = sorted(rows.touched.items())
        states = held.keep(((key, entry.member, entry.last_seq) for key, entry in touched), params_digest)
    writes.upsert(names.member_state, STATE_COLUMNS, ("region", "member_id"), states)
    if years:
        add_years(writes, names, rows, registry, params_digest)
    writes.upsert(names.fund_totals, FUND_COLUMNS, FUND_COLUMNS[:3], rows.fund.rows(), updates=FUND_INCREMENTS)
    writes.insert(names.closed_years, ("region", "year", "seq"), rows.closed_years)
    writes.insert(names.account_payments, ("region", "payment_id", "seq"), rows.payments)


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
MOVEMENT_COLUMNS = MOVEMENT_ROW  # BatchRows.movements' order
INCENTIVE_COLUMNS = ("seq", "region", "member_id", "year", "record")
REJECTION_COLUMNS = (
    "seq",
    "event_id",
    "source",
    "reason",
    "detail",
    "payload",
    "payload_digest",
    "policy_id",
    "region",
)
PARKED_COLUMNS = ("event_id", "region", "member_id", "payload", "source", "parked_at", "arrival")
SIGNATURE_COLUMNS = ("event_id", "producer", "key_id", "signature", "signed", "received_at", "region")


def add_settlements(writes: Writes, table: str, rows: BatchRows) -> None:
    writes.insert(table, SETTLEMENT_COLUMNS, rows.settlements)


def add_ledger(writes: Writes, rows: BatchRows) -> None:
    """The ledger rows of a batch, beside its events (`event_store.add_events`)."""
    add_settlements(writes, "ledger_settlements", rows)
    writes.insert("ledger_movements", MOVEMENT_COLUMNS, rows.movements)
    writes.insert("ledger_incentives", INCENTIVE_COLUMNS, rows.incentives)
    writes.insert("parked_events", PARKED_COLUMNS, rows.parked)
    writes.insert("ledger_signatures", SIGNATURE_COLUMNS, rows.signatures)
    writes.insert("ledger_rejections", REJECTION_COLUMNS, rows.rejections, ordered=True)  # numbered in this order


async def fund_by_pool(raw: Raw) -> dict:
    """(region, month, pool) → (fund paid, settlements, reversals): what a downstream report reconciles with."""
    rows = await raw.fetch("SELECT region, month, pool, fund_paid, settlements, reversals FROM fund_totals")
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}
