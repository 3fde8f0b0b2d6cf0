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
    through: int | None  # the last position pruned (None: nothing was)
    published: int | None  # the last position every relay has published (None: no relay has published yet)
    newest: int | None  # the outbox's newest position (None: the outbox is empty)


class PruneStopped(Exception):
    """`prune` failed part of the way: what it had deleted by then stays deleted, and is said."""

    def __init__(self, done: Pruned, error: BaseException):
        super().__init__(
            f"pruning the outbox stopped after {done.records} record(s)"
            + (f" through position {done.through}" if done.through is not None else "")
            + f": {error}"
        )
        self.done = done


class UntrustedRelay(Exception):
    """The relays' position lies past the outbox's newest record, which no relay records."""


PRUNE_CHUNK = 10_000  # records a transaction of `prune` deletes


async def prune(raw: Raw, recorded_before: datetime, chunk: int = PRUNE_CHUNK, dry_run: bool = False) -> Pruned:
    """Delete the outbox's oldest records, oldest first: those every relay has published and that were recorded
    before `recorded_before`, up to the first that is not both, so what remains is whole from there on. The
    record at the relays' position is kept: writers read the outbox's newest position to hand a batch to their
    relay (`add_outbox`). Each chunk of at most `chunk` records is looked at and deleted in a transaction of its
    own, so writers and the relay go on meanwhile (they touch only later positions), and no statement reads more
    than a chunk. `dry_run`: count them, delete nothing. `UntrustedRelay` when the relays' position lies past the
    outbox's newest record; `PruneStopped` when a chunk fails after others were deleted."""
    if chunk < 1:
        raise ValueError("a chunk holds at least one record")
    published = await raw.fetchval("SELECT min(position) FROM outbox_relay")
    newest = await raw.fetchval("SELECT max(position) FROM outbox")
    if published is None or newest is None:
        return Pruned(0, None, published, newest)
    if published > newest:
        raise UntrustedRelay(
            f"the relays' position {published} is past the outbox's newest record {newest}, which no relay records: "
            "outbox_relay is not to be trusted, and nothing is pruned"
        )
    records, after, through = 0, 0, None
    try:
        while True:
            rows = await raw.fetch(
                "SELECT position, recorded_at >= $3 FROM outbox WHERE position > $1 AND position < $2 "
                "ORDER BY position LIMIT $4",
                after,
                published,
                recorded_before,
                chunk,
            )
            young = next((n for n, (_, recent) in enumerate(rows) if recent), None)
            taken = rows if young is None else rows[:young]
            if not taken:
                break
            upto = taken[-1][0]
            if dry_run:
                records += len(taken)
            else:
                status = await raw.execute("DELETE FROM outbox WHERE position > $1 AND position <= $2", after, upto)
                records += int(status.split()[-1])
            after = through = upto
            if young is not None or len(rows) < chunk:
                break
    except Exception as error:
        if records and not dry_run:
            raise PruneStopped(Pruned(records, through, published, newest), error) from error
        raise
    return Pruned(records, through, published, newest)
