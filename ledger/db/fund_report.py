"""The fund's monthly figures as the ledger holds them: by pool and facility level, and the clearing statement
(清算) per designated facility. A settlement counts in the month of its visit, a reversal in the month of the visit
it reverses (it keeps that visit's date), as the downstream reporting tables count them."""

from __future__ import annotations

from datetime import date
from typing import Any

# the amounts of a settlement record (text in the record, so that no float ever holds one); `r` is the record
# parsed once a row (`_PARSED`: kept as the text medledger wrote, revision 0016)
_AMOUNTS = """count(*) FILTER (WHERE s.reverses IS NULL) AS visits,
       count(*) FILTER (WHERE s.reverses IS NOT NULL) AS reversals,
       coalesce(sum((r.record->>'total_amount')::numeric), 0) AS total_amount,
       coalesce(sum(s.fund_paid) FILTER (WHERE s.fund_pool = 'general'), 0) AS fund_general,
       coalesce(sum(s.fund_paid) FILTER (WHERE s.fund_pool = 'chronic'), 0) AS fund_chronic,
       coalesce(sum((r.record->>'account_paid')::numeric), 0) AS account_paid,
       coalesce(sum((r.record->>'cash_paid')::numeric), 0) AS cash_paid"""


_PARSED = "CROSS JOIN LATERAL (SELECT s.record::jsonb AS record OFFSET 0) r"  # parsed once, not once a use


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


async def month_by_level(raw: Any, region: str, first: date) -> list[dict]:
    rows = await raw.fetch(
        f"""SELECT (r.record->>'facility_level')::int AS facility_level, {_AMOUNTS}
            FROM ledger_settlements s {_PARSED} WHERE s.region = $1 AND s.visit_date >= $2 AND s.visit_date < $3
            GROUP BY 1 ORDER BY 1 NULLS LAST""",
        region,
        first,
        _next_month(first),
    )
    return [dict(r) for r in rows]


async def month_by_facility(raw: Any, region: str, first: date) -> list[dict]:
    """The clearing statement: per facility the visit was settled at (a reversal: the reversed visit's)."""
    rows = await raw.fetch(
        f"""SELECT coalesce(oe.payload::jsonb->>'facility_id', e.payload::jsonb->>'facility_id') AS facility_id,
                   {_AMOUNTS}
            FROM ledger_settlements s JOIN ledger_events e ON e.seq = s.seq AND e.region = s.region
            LEFT JOIN ledger_settlements o ON o.settlement_id = s.reverses AND o.region = s.region
            LEFT JOIN ledger_events oe ON oe.seq = o.seq AND oe.region = o.region {_PARSED}
            WHERE s.region = $1 AND s.visit_date >= $2 AND s.visit_date < $3
            GROUP BY 1 ORDER BY 1 NULLS LAST""",
        region,
        first,
        _next_month(first),
    )
    return [dict(r) for r in rows]


async def fund_totals(raw: Any, region: str) -> list[dict]:
    """The `fund_totals` projection's rows of `region`, month by month."""
    rows = await raw.fetch(
        "SELECT month, pool, fund_paid, settlements, reversals FROM fund_totals WHERE region = $1 ORDER BY month, pool",
        region,
    )
    return [dict(r) for r in rows]


async def regions_and_months(raw: Any) -> list[tuple[str, date]]:
    return [tuple(r) for r in await raw.fetch("SELECT DISTINCT region, month FROM fund_totals ORDER BY 1, 2")]
