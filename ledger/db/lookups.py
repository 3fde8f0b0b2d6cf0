"""Reading what the ledger decided about particular events and visits, for callers waiting at a counter: whether
an event was settled, refused or is waiting for its member's enrolment; a visit's settlement and its reversal; a
facility's settlements of a period. Statements in no transaction, on a pooled connection (`reading`). A settlement
is given as it is published, with its national aliases."""

from __future__ import annotations

from datetime import date
from typing import Any

from ..records import with_aliases
from .parking import HELD
from .projection_store import as_json

# An event's fate: its settlement (or reversal), else its refusal, else it waits. A refused event keeps its
# rejection even when it was appended (seq not null) or never became one (seq null, its event id known).
OUTCOMES = (
    "SELECT s.event_id, 'settled', s.record::text FROM ledger_settlements s WHERE s.event_id = ANY($1::text[]) "
    "UNION ALL SELECT r.event_id, 'refused', json_build_object('reason', r.reason, 'detail', r.detail)::text "
    "FROM ledger_rejections r WHERE r.event_id = ANY($1::text[]) "
    "UNION ALL SELECT p.event_id, 'parked', NULL FROM parked_events p WHERE p.event_id = ANY($1::text[]) "
    "AND NOT EXISTS (SELECT 1 FROM ledger_event_ids e WHERE e.event_id = p.event_id AND e.region = p.region)"
)
PRECEDENCE = {"settled": 0, "refused": 1, "parked": 2}


async def outcomes(raw: Any, event_ids: list[str]) -> dict[str, tuple[str, dict | None]]:
    """event id -> ("settled", settlement record) | ("refused", {reason, detail}) | ("parked", None), for the ids
    the ledger has decided or parked; an id it has not seen is absent."""
    found: dict[str, tuple[str, dict | None]] = {}
    for event_id, kind, record in await raw.fetch(OUTCOMES, event_ids):
        held = found.get(event_id)
        if held is None or PRECEDENCE[kind] < PRECEDENCE[held[0]]:
            found[event_id] = (kind, None if record is None else _published(kind, as_json(record)))
    return found


def _published(kind: str, record: dict) -> dict:
    return with_aliases(record) if kind == "settled" else record


# A visit's settlement, the facility of its event, and its reversal if it has one.
VISIT = (
    "SELECT s.record::text, e.payload::jsonb ->> 'facility_id', "
    "(SELECT r.record::text FROM ledger_settlements r WHERE r.reverses = s.settlement_id) "
    "FROM ledger_settlements s JOIN ledger_events e ON e.seq = s.seq AND e.region = s.region "
    "WHERE s.region = $1 AND s.reverses IS NULL AND "
)


async def visit_settlements(
    raw: Any, region: str, visit_id: str | None = None, settlement_id: str | None = None
) -> tuple[dict, str, dict | None] | None:
    """(settlement, facility id, its reversal or None) of the visit named by `visit_id` or by its
    `settlement_id`; None when there is no such settled visit."""
    if settlement_id is not None:
        row = await raw.fetchrow(VISIT + "s.settlement_id = $2", region, settlement_id)
    else:
        row = await raw.fetchrow(VISIT + "s.visit_id = $2", region, visit_id)
    if row is None:
        return None
    return with_aliases(as_json(row[0])), row[1], None if row[2] is None else with_aliases(as_json(row[2]))


async def facility_settlements(raw: Any, facility_id: str, first: date, last: date) -> list[dict]:
    """Settlements and reversals of visits at `facility_id` dated `first` to `last`, in ledger order. The
    facility is the visit event's (a reversal's is its visit's)."""
    rows = await raw.fetch(
        "SELECT s.record::text FROM ledger_settlements s "
        "JOIN ledger_settlements v ON v.settlement_id = coalesce(s.reverses, s.settlement_id) AND v.region = s.region "
        "JOIN ledger_events e ON e.seq = v.seq AND e.region = v.region "
        "WHERE s.visit_date BETWEEN $2 AND $3 AND (e.payload::jsonb ->> 'facility_id') = $1 "
        "ORDER BY s.seq, s.settlement_id",
        facility_id,
        first,
        last,
    )
    return [with_aliases(as_json(row[0])) for row in rows]


async def visit_facilities(raw: Any, event_ids: list[str]) -> dict[str, str | None]:
    """The facility_id of each visit event in the ledger named by its event id (the event a settlement names)."""
    rows = await raw.fetch(
        f"SELECT e.event_id, e.payload::jsonb ->> 'facility_id' FROM ({HELD}) e",
        event_ids,
    )
    return {event_id: facility for event_id, facility in rows}


async def member_state(raw: Any, region: str, member_id: str) -> dict | None:
    """The engine's state of a member as the projections hold it (`codec.state_from_json` reads it)."""
    value = await raw.fetchval(
        "SELECT state::text FROM member_state WHERE region = $1 AND member_id = $2", region, member_id
    )
    return None if value is None else as_json(value)


async def parameters_content(raw: Any, digest: str) -> str | None:
    return await raw.fetchval("SELECT content FROM parameter_sets WHERE digest = $1", digest)
