"""Reading the signatures kept with the events (`ledger_signatures`), for `replay --verify`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..adoption import IS_ADOPTION

CHUNK = 5_000

# Each signature with the event it is kept for: in the ledger, or still waiting in the parking area.
SIGNED = (
    "SELECT s.event_id, s.producer, s.key_id, s.signature, s.signed, s.received_at, "
    "coalesce(e.payload, p.payload), s.region FROM ledger_signatures s "
    "LEFT JOIN ledger_events e ON e.region = s.region AND e.event_id = s.event_id "
    "LEFT JOIN parked_events p ON p.event_id = s.event_id AND p.region = s.region "
    "WHERE (s.event_id, s.region) > ($1, $2) ORDER BY s.event_id, s.region LIMIT $3"
)

# Events recorded since the ledger first kept a signature, with none kept: from then on medledger's intake admits
# an event only signed (from the broker always, from a file: `medledger ingest` then needs a producers file and
# signs as the file's producer), so such an event was not written by it (none such before the first signature: no
# minimum, no rows). Adoptions are medledger's own rows. So are events that arrived before the ledger kept any
# signature and waited in the parking area until after: they were admitted unsigned, as everything then was, and
# are appended when their member's enrolment arrives (or refused when they have waited too long).
UNSIGNED = (
    f"SELECT e.seq, e.event_id FROM ledger_events e WHERE NOT ({IS_ADOPTION}) "
    "AND e.seq > (SELECT min(f.seq) FROM ledger_events f JOIN ledger_signatures g USING (region, event_id)) "
    "AND NOT EXISTS (SELECT 1 FROM ledger_signatures s WHERE s.region = e.region AND s.event_id = e.event_id) "
    "AND NOT EXISTS (SELECT 1 FROM parked_events p WHERE p.event_id = e.event_id AND p.region = e.region "
    "AND p.parked_at < (SELECT min(r.received_at) FROM ledger_signatures r)) ORDER BY e.seq LIMIT $1"
)


async def stored_signatures(raw: Any) -> AsyncIterator[list]:
    """(event_id, producer, key_id, signature, signed, received_at, payload) rows, a chunk at a time."""
    after = ("", "")  # (event_id, region): an id is in two regions' rows when one parked it as the other appended
    while True:
        rows = await raw.fetch(SIGNED, *after, CHUNK)
        if not rows:
            return
        yield [tuple(row)[:7] for row in rows]
        after = (rows[-1][0], rows[-1][7])


async def unsigned_since_signing(raw: Any, limit: int = 200) -> list[tuple[int, str]]:
    return [tuple(row) for row in await raw.fetch(UNSIGNED, limit)]


async def keeps_signatures(raw: Any) -> bool:
    """Whether the ledger keeps producers' signatures: once it does, every event it appends must have one."""
    return await raw.fetchval("SELECT EXISTS (SELECT 1 FROM ledger_signatures)")
