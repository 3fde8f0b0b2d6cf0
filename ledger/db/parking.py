"""The waiting room's queries: what waits for members a batch enrols, what waited too long, and which of a batch's
event ids the ledger or the waiting room already holds (`ledger.pipeline.Parking`, `ledger.service`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from ..carry import Carry
from ..contract import EventBase
from .connection import Raw
from .projection_store import Ahead, Names, book_lookups, each_key, event_keys, key_arrays

# Of parked_events `t`: its own bytes were not refused (see `WAITING`).
PARKED_NOT_REFUSED = (
    " AND NOT EXISTS (SELECT 1 FROM ledger_rejections r WHERE r.event_id = t.event_id AND r.seq IS NULL "
    "AND r.region IS NULL "
    "AND r.payload_digest = encode(sha256(convert_to(t.payload, 'UTF8')), 'hex') "
    "AND r.source = coalesce(t.source, 'parked:' || t.event_id))"
)

# Of parked_events `t`: the event is neither in the ledger nor refused itself. A parked event is refused without
# a ledger position when its own bytes no longer decode (revived by a later version), or when the ledger holds its
# id for another region's event (`pipeline.Parking`): that rejection keeps the very payload parked. Other input
# that carries the same event id (malformed, say) is refused on its own and leaves the parked event waiting. The
# source names the parked row itself (`pipeline.revive`): input refused earlier with the same bytes, before this
# event was parked, is another arrival. Released, a parked event is in the ledger in its own region; the id in
# another region's stream is another event's, written by a writer of that region while this one was parked, and
# does not end its wait: it is refused when it is released or expires.
WAITING = (
    " AND NOT EXISTS (SELECT 1 FROM ledger_event_ids e WHERE e.event_id = t.event_id AND e.region = t.region)"
    + PARKED_NOT_REFUSED
)


async def waiting_for(raw: Raw, keys: Iterable[tuple[str, str]]) -> list[tuple]:
    """(region, member_id, payload, source, event_id) of the events waiting for the members at `keys`, in the
    order they arrived."""
    columns = "t.region, t.member_id, t.payload, t.source, t.event_id"
    return await raw.fetch(
        each_key("parked_events", "member_id", columns, WAITING) + " ORDER BY t.arrival", *key_arrays(keys)
    )


async def expired(raw: Raw, cutoff: datetime, limit: int, region: str) -> list[tuple]:
    """(event_id, payload, source, parked_at) of up to `limit` events of `region` waiting since before `cutoff`,
    oldest first."""
    return await raw.fetch(
        "SELECT t.event_id, t.payload, t.source, t.parked_at FROM parked_events t "
        "WHERE t.parked_at < $1 AND t.region = $3" + WAITING + " ORDER BY t.arrival LIMIT $2",
        cutoff,
        limit,
        region,
    )


async def expired_regions(raw: Raw, cutoff: datetime) -> list[str]:
    """The regions with events waiting since before `cutoff`."""
    rows = await raw.fetch(
        "SELECT DISTINCT t.region FROM parked_events t WHERE t.parked_at < $1" + WAITING + " ORDER BY 1", cutoff
    )
    return [row[0] for row in rows]


# The events in the ledger at the ids in $1: each id found in `ledger_event_ids` whatever region holds it, then
# its event in that region's partition alone, one probe of `ledger_events_event` (event_id, region) an id. The
# subquery is a fence (OFFSET 0): joined otherwise, a plan made without statistics of the ids or the partitions
# hashed every event of the ledger to find a batch's repeats.
HELD = (
    "SELECT e.event_id, e.payload FROM ledger_event_ids i CROSS JOIN LATERAL (SELECT e.event_id, e.payload "
    "FROM ledger_events e WHERE e.event_id = i.event_id AND e.region = i.region OFFSET 0) e "
    "WHERE i.event_id = ANY($1::text[])"
)


HELD_OR_WAITING = (
    HELD
    + " UNION ALL SELECT t.event_id, t.payload FROM parked_events t WHERE t.event_id = ANY($1::text[])"
    + PARKED_NOT_REFUSED
)


async def held(raw: Raw, event_ids: list[str]) -> list[tuple[str, str]]:
    """(event_id, canonical payload) of the events at `event_ids` in the ledger, then of those waiting (parked and
    their bytes not refused); an id may come twice."""
    return await raw.fetch(HELD_OR_WAITING, event_ids)


async def held_and_ahead(
    raw: Raw, names: Names, event_ids: list[str], events: Sequence[EventBase], carry: Carry | None
) -> tuple[list[tuple[str, str]], Ahead]:
    """`held`, and in the same round trip what `load_book` will look up for `events`: the visits they name and
    their members (with the digest of each one's last event), but for those the batch before holds (`carry`). A
    small batch of the service reads these two first, one after the other: read together, a batch of visits
    costs one round trip less. Its events' repeats may be among `events` (they are told apart by what this
    returns): `load_book` takes only what its own events name."""
    visit_keys, _, member_keys = event_keys(events)
    if carry is not None:
        visit_keys -= carry.book.visits.keys()
        member_keys -= carry.book.members.keys()
    lookups, arguments = book_lookups(names, visit_keys, member_keys, True, first=2)
    if not lookups:
        return await held(raw, event_ids), Ahead(visit_keys, member_keys, [])
    rows = await raw.fetch(
        f"SELECT 'held', t.event_id, t.payload, NULL::text FROM ({HELD_OR_WAITING}) t UNION ALL {lookups}",
        event_ids,
        *arguments,
    )
    found = [(row[1], row[2]) for row in rows if row[0] == "held"]
    return found, Ahead(visit_keys, member_keys, [row for row in rows if row[0] != "held"])


async def refused_digests(raw: Raw, digests: list[str]) -> set[str]:
    """Which of the payload digests of unreadable input were refused already (with no ledger position)."""
    rows = await raw.fetch(
        "SELECT payload_digest FROM ledger_rejections "
        "WHERE seq IS NULL AND region IS NULL AND payload_digest = ANY($1::text[])",
        digests,
    )
    return {row[0] for row in rows}
