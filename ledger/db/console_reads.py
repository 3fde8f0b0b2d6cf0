"""What the console reads besides the statements and traces of `ledger.reports`: the queue of rejections and
parked events, a settlement's neighbours in the hash chain, the heads of the chain per region."""

from __future__ import annotations

from typing import Any

from .connection import Raw
from .parking import WAITING


async def _dicts(raw: Raw, query: str, *arguments: Any) -> list[dict]:
    return [dict(row) for row in await raw.fetch(query, *arguments)]


async def chain_neighbours(raw: Raw, seq: int) -> list[dict]:
    return await _dicts(
        raw,
        "SELECT seq, event_id, event_type, hash, prev_hash FROM ledger_events "
        "WHERE seq BETWEEN $1::bigint - 1 AND $1::bigint + 1 ORDER BY seq",
        seq,
    )


async def region_heads(raw: Raw) -> list[dict]:
    """Each region's last event in the chain: (region, seq, hash)."""
    return await _dicts(
        raw,
        "SELECT e.region, e.seq, e.hash FROM (SELECT region, max(seq) AS seq FROM ledger_events GROUP BY region) h "
        "JOIN ledger_events e ON e.seq = h.seq AND e.region = h.region ORDER BY e.region",
    )


async def rejections(raw: Raw, search: str | None, limit: int = 200) -> list[dict]:
    pattern = f"%{search}%" if search else None
    return await _dicts(
        raw,
        "SELECT rejection_id, seq, event_id, source, reason, detail, payload, policy_id, recorded_at "
        "FROM ledger_rejections WHERE $1::text IS NULL OR reason ILIKE $1 OR detail ILIKE $1 OR event_id ILIKE $1 "
        "OR payload ILIKE $1 ORDER BY rejection_id DESC LIMIT $2",
        pattern,
        limit,
    )


async def rejection_counts(raw: Raw) -> list[dict]:
    return await _dicts(
        raw,
        "SELECT reason, (recorded_at AT TIME ZONE 'Asia/Shanghai')::date AS day, count(*) AS count "
        "FROM ledger_rejections GROUP BY 1, 2 ORDER BY 2 DESC, 1",
    )


async def parked(raw: Raw, search: str | None, limit: int = 200) -> list[dict]:
    """Events still waiting for their member's enrolment (parked, not yet in the ledger)."""
    pattern = f"%{search}%" if search else None
    return await _dicts(
        raw,
        "SELECT t.event_id, t.region, t.member_id, t.payload, t.source, t.parked_at FROM parked_events t "
        "WHERE ($1::text IS NULL OR t.member_id ILIKE $1 OR t.event_id ILIKE $1 OR t.payload ILIKE $1)"
        + WAITING
        + " ORDER BY t.arrival DESC LIMIT $2",
        pattern,
        limit,
    )


async def reversal_of(raw: Raw, settlement_id: str) -> str | None:
    """The settlement that reverses `settlement_id`, if any."""
    return await raw.fetchval("SELECT settlement_id FROM ledger_settlements WHERE reverses = $1", settlement_id)
