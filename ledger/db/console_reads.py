"""What the console reads besides the statements and traces of `ledger.reports`: the queue of rejections and
parked events, a settlement's neighbours in the hash chain, the heads of the chain per region."""

from __future__ import annotations

from .connection import Raw
from .parking import WAITING


async def chain_neighbours(raw: Raw, seq: int) -> list[dict]:
    rows = await raw.fetch(
        "SELECT seq, event_id, event_type, hash, prev_hash FROM ledger_events "
        "WHERE seq BETWEEN $1::bigint - 1 AND $1::bigint + 1 ORDER BY seq",
        seq,
    )
    return [dict(r) for r in rows]


async def region_heads(raw: Raw) -> list[dict]:
    """Each region's last event in the chain: (region, seq, hash)."""
    rows = await raw.fetch(
        "SELECT e.region, e.seq, e.hash FROM (SELECT region, max(seq) AS seq FROM ledger_events GROUP BY region) h "
        "JOIN ledger_events e ON e.seq = h.seq ORDER BY e.region"
    )
    return [dict(r) for r in rows]


async def rejections(raw: Raw, search: str | None, limit: int = 200) -> list[dict]:
    pattern = f"%{search}%" if search else None
    rows = await raw.fetch(
        "SELECT rejection_id, seq, event_id, source, reason, detail, payload, policy_id, recorded_at "
        "FROM ledger_rejections WHERE $1::text IS NULL OR reason ILIKE $1 OR detail ILIKE $1 OR event_id ILIKE $1 "
        "OR payload ILIKE $1 ORDER BY rejection_id DESC LIMIT $2",
        pattern,
        limit,
    )
    return [dict(r) for r in rows]


async def rejection_counts(raw: Raw) -> list[dict]:
    rows = await raw.fetch(
        "SELECT reason, (recorded_at AT TIME ZONE 'Asia/Shanghai')::date AS day, count(*) AS count "
        "FROM ledger_rejections GROUP BY 1, 2 ORDER BY 2 DESC, 1"
    )
    return [dict(r) for r in rows]


async def parked(raw: Raw, search: str | None, limit: int = 200) -> list[dict]:
    """Events still waiting for their member's enrolment (parked, not yet in the ledger)."""
    pattern = f"%{search}%" if search else None
    rows = await raw.fetch(
        "SELECT t.event_id, t.region, t.member_id, t.payload, t.source, t.parked_at FROM parked_events t "
        "WHERE ($1::text IS NULL OR t.member_id ILIKE $1 OR t.event_id ILIKE $1 OR t.payload ILIKE $1)"
        + WAITING
        + " ORDER BY t.arrival DESC LIMIT $2",
        pattern,
        limit,
    )
    return [dict(r) for r in rows]


async def reversal_of(raw: Raw, settlement_id: str) -> str | None:
    """The settlement that reverses `settlement_id`, if any."""
    return await raw.fetchval("SELECT settlement_id FROM ledger_settlements WHERE reverses = $1", settlement_id)
