"""The transactional outbox: what a batch publishes is written in the batch's own transaction, and a relay copies
it to the broker afterwards. A committed record can therefore never be missing from the topic; it can be
published twice (after a relay crash between sending and recording its position), so consumers of the topic
deduplicate by the record's id (`settlement_id`, `movement_id`).

Positions come from a sequence taken under the append lock, so their order is commit order; a rolled-back batch
leaves a gap, which a relay simply steps over.
"""

from __future__ import annotations

from dataclasses import dataclass

from .connection import Raw
from .writes import Writes

SETTLEMENTS = "settlements"
REJECTIONS = "rejections"
COLUMNS = ("stream", "key", "value")
# Every writing transaction notifies this channel; PostgreSQL delivers it when the transaction commits, so a relay
# hears of commits by any process at once instead of at its next idle poll. The payload names the writer (a
# `LedgerService`): a relay is handed its own service's batches (`Handoff`) and need not read them back.
CHANNEL = "medledger_outbox"


def key_of(record: dict) -> str | None:
    """The member whose account or visit the record is about (the payer's for a movement), so one member's records
    stay in order on one partition."""
    member = record.get("member_id")
    if member is None and isinstance(record.get("payload"), dict):
        member = record["payload"].get("member_id") or record["payload"].get("region")
    return member if isinstance(member, str) else None


def add_outbox(writes: Writes, rows: list[tuple[str, str | None, str]]) -> tuple[int, int] | None:
    """(stream, key, JSON) rows as a batch collected them (`BatchRows.outbox`), positioned in that order.
    Settlements, reversals, movements and incentive evaluations go to the settlement stream, refusals to the
    rejection stream; a parked event publishes nothing yet: it is settled or refused later.

    With rows, the indexes in what `writes.run` returns of the last position before them and of their last
    position (see `Handoff`)."""
    if not rows:
        return None
    before = writes.before("SELECT coalesce(max(position), 0) FROM outbox")
    last = writes.insert("outbox", COLUMNS, rows, ordered=True, newest="position")
    assert last is not None  # rows, numbered by `newest`
    return before, last


@dataclass(frozen=True)
class Handoff:
    """A committed batch's outbox records, for its own process's relay to publish without reading them back.
    Written under the append lock, they are the next records of the outbox after position `after`: the relay
    publishes them as they are when it has published up to exactly there, and reads the outbox otherwise."""

    after: int
    last: int
    rows: list[tuple[str, str | None, str]]


@dataclass(frozen=True)
class Pending:
    position: int
    stream: str
    key: str | None
    value: str


async def pending(raw: Raw, after: int, limit: int) -> list[Pending]:
    rows = await raw.fetch(
        "SELECT position, stream, key, value FROM outbox WHERE position > $1 ORDER BY position LIMIT $2", after, limit
    )
    return [Pending(*row) for row in rows]


async def relayed(raw: Raw, relay: str) -> int:
    return await raw.fetchval("SELECT position FROM outbox_relay WHERE relay = $1", relay) or 0


async def record_relayed(raw: Raw, relay: str, position: int) -> None:
    await raw.execute(
        "INSERT INTO outbox_relay (relay, position) VALUES ($1, $2) "
        "ON CONFLICT (relay) DO UPDATE SET position = excluded.position",
        relay,
        position,
    )
