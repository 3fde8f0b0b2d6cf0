"""The transactional outbox: what a batch publishes is written in the batch's own transaction, and a relay copies
it to the broker afterwards. A committed record can therefore never be missing from the topic; it can be
published twice (after a relay crash between sending and recording its position), so consumers of the topic
deduplicate by the record's id (`settlement_id`, `movement_id`).

Positions come from a sequence. Writers of different regions commit in parallel (`ledger.streams`), so a position
may commit after a greater one, and a rolled-back batch leaves a gap for good. A relay therefore reads the outbox
up to its first gap only, and steps over a gap once every transaction that had begun when it first saw the gap has
ended (`Gaps`): then a position still missing never commits. Every writer takes its transaction id as it begins
(`recorder.writing`), before it draws a position, so whoever drew the missing position is among those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .connection import Raw

if TYPE_CHECKING:
    from .writes import Writes  # not loaded by what only reads the constants

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


class Gaps:
    """Positions a relay found missing, each with a transaction id taken right after it first did (`seen`): every
    transaction that could still commit the position had begun by then, so none is left once the oldest running
    transaction is newer. Not the snapshot's xmax: that is one past the newest transaction that has *ended*, and a
    transaction begun after that one (a writer of another region still drawing its positions) is in no
    snapshot's list of running transactions."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def passable(self, position: int, xmin: int) -> bool:
        """Whether the missing `position` can no longer commit, by a snapshot whose oldest running transaction is
        `xmin` (never when the position was not seen missing before)."""
        first = self.seen.get(position)
        if first is not None and xmin > first:
            del self.seen[position]
            return True
        return False


async def pending(raw: Raw, after: int, limit: int, gaps: Gaps) -> list[Pending]:
    """Committed records after position `after`, in order, up to the first position that may still commit. `gaps`
    are the positions its reader found missing before (a relay keeps them while it leads)."""
    rows = await raw.fetch(
        "SELECT position, stream, key, value, pg_snapshot_xmin(s)::text "
        "FROM outbox, pg_current_snapshot() s WHERE position > $1 ORDER BY position LIMIT $2",
        after,
        limit,
    )
    found, expected = [], after + 1
    for position, stream, key, value, xmin in rows:
        if position != expected and not gaps.passable(expected, int(xmin)):
            if expected not in gaps.seen:
                # A transaction of its own, begun after the snapshot: newer than whoever drew the position (`raw` is
                # in no transaction, so it ends at once; one such transaction a gap).
                gaps.seen[expected] = int(await raw.fetchval("SELECT pg_current_xact_id()::text"))
            break
        found.append(Pending(position, stream, key, value))
        expected = position + 1
    return found


def handed_over(before: int, last: int, rows: list[tuple[str, str | None, str]]) -> Handoff | None:
    """A batch's records for its relay, when they are the next positions after `before` (the greatest position it
    saw committed): otherwise another writer's positions lie among them, and the relay reads the outbox."""
    return Handoff(before, last, rows) if last - before == len(rows) else None


async def relayed(raw: Raw, relay: str) -> int:
    return await raw.fetchval("SELECT position FROM outbox_relay WHERE relay = $1", relay) or 0


async def record_relayed(raw: Raw, relay: str, position: int) -> None:
    await raw.execute(
        "INSERT INTO outbox_relay (relay, position) VALUES ($1, $2) "
        "ON CONFLICT (relay) DO UPDATE SET position = excluded.position",
        relay,
        position,
    )


@dataclass(frozen=True)
class Pruned:
    """What `prune` removed, or would remove: the records at positions up to `through`."""

    records: int
    through: int | None  # the last position pruned (None: nothing could be)
    published: int | None  # the last position every relay has published (None: no relay has published yet)
    newest: int | None  # the outbox's newest position


PRUNE_CHUNK = 10_000  # records a transaction of `prune` deletes


async def prune(raw: Raw, recorded_before: datetime, chunk: int = PRUNE_CHUNK, dry_run: bool = False) -> Pruned:
    """Delete the outbox's oldest records: those every relay has published, and recorded before `recorded_before`,
    up to the first that is not both (what remains is whole from there on). The record at the relays' position is
    kept: writers read the outbox's newest position to hand a batch to their relay (`add_outbox`). Each chunk of
    `chunk` positions is a transaction of its own, so writers and the relay go on meanwhile; they touch only later
    positions. `dry_run`: count them and delete nothing."""
    published = await raw.fetchval("SELECT min(position) FROM outbox_relay")
    oldest, newest = await raw.fetchrow("SELECT min(position), max(position) FROM outbox")
    if published is None or oldest is None or oldest >= published:
        return Pruned(0, None, published, newest)
    young = await raw.fetchval(
        "SELECT position FROM outbox WHERE position >= $1 AND position < $2 AND recorded_at >= $3 "
        "ORDER BY position LIMIT 1",
        oldest,
        published,
        recorded_before,
    )
    through = (published if young is None else young) - 1
    if through < oldest:
        return Pruned(0, None, published, newest)
    if dry_run:
        counted = await raw.fetchval(
            "SELECT count(*) FROM outbox WHERE position >= $1 AND position <= $2", oldest, through
        )
        return Pruned(counted, through, published, newest)
    records, after = 0, oldest - 1
    while after < through:
        upto = min(after + chunk, through)
        status = await raw.execute("DELETE FROM outbox WHERE position > $1 AND position <= $2", after, upto)
        records += int(status.split()[-1])
        after = upto
    return Pruned(records, through, published, newest)
