"""Where each consumer stands in each partition, kept in the ledger database.

A batch's offsets are written in the same transaction as the ledger rows it produced, so after a crash the consumer
resumes exactly after the last committed batch: nothing is lost and nothing applied twice.

Claims fence a consumer that lost its partitions. Being assigned a partition raises its epoch (`claim`); a batch
commits only if every partition it read still has the epoch its consumer claimed (`advance`), so work fetched before
a rebalance can never commit after another consumer took the partition over. A claim waits for a batch that holds
the partition's row to finish, and then starts from what that batch committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from ..recorder import Claim, TopicPartition
from .connection import Raw
from .writes import Writes

__all__ = ["Claim", "TopicPartition"]


class StaleClaim(RuntimeError):
    """A partition of the batch was claimed by another consumer since this one claimed it."""

    def __init__(self, lost: Iterable[TopicPartition]):
        self.lost = sorted(lost)
        super().__init__("partitions claimed by another consumer since: " + ", ".join(f"{t}/{p}" for t, p in self.lost))


async def claim(raw: Raw, consumer: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, Claim]:
    """Take the partitions over, in a transaction of its own: raise their epochs and return where to resume."""
    claims = {}
    async with raw.transaction():
        for topic, partition in sorted(partitions):
            epoch, next_offset = await raw.fetchrow(
                "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, epoch) "
                "VALUES ($1, $2, $3, NULL, 1) ON CONFLICT (consumer, topic, partition) "
                "DO UPDATE SET epoch = consumer_offsets.epoch + 1 RETURNING epoch, next_offset",
                consumer,
                topic,
                partition,
            )
            claims[(topic, partition)] = Claim(epoch, next_offset)
    return claims


async def rebase(raw: Raw, consumer: str, partition: TopicPartition, held: Claim, offset: int) -> Claim | None:
    """Move a partition's stored offset back to `offset`, under the claim `held` and only from where it stood:
    the claim with it, or None if the partition was claimed again or consumed from meanwhile."""
    found = await raw.fetchrow(
        "UPDATE consumer_offsets SET next_offset = $5 WHERE consumer = $1 AND topic = $2 AND partition = $3 "
        "AND epoch = $4 AND next_offset = $6 RETURNING epoch, next_offset",
        consumer,
        *partition,
        held.epoch,
        offset,
        held.next_offset,
    )
    return None if found is None else Claim(*found)


async def stored(raw: Raw, consumer: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, Claim]:
    """The committed positions and epochs, read without claiming."""
    rows = await raw.fetch(
        "SELECT topic, partition, epoch, next_offset FROM consumer_offsets WHERE consumer = $1", consumer
    )
    wanted = set(partitions)
    return {(t, p): Claim(e, o) for t, p, e, o in rows if (t, p) in wanted}


class OutOfSequence(StaleClaim):
    """The batch starts before where the partition's last committed batch ended: it was read from a stale
    position, so it is refused and the consumer goes back to the stored offset. (A batch may start after it:
    offsets skip over transaction markers and compacted records.)"""

    def __init__(self, gaps: Iterable[tuple[TopicPartition, int | None, int]]):
        self.gaps = sorted(gaps)
        self.lost = [tp for tp, _, _ in self.gaps]
        RuntimeError.__init__(
            self,
            "batch does not continue the stored offsets: "
            + ", ".join(f"{t}/{p} stored {stored}, batch starts at {first}" for (t, p), stored, first in self.gaps),
        )


# The claims' rows of the partitions a batch read: {0} the consumer, {1} and {2} the partitions' topics and numbers.
_CLAIMS = (
    "SELECT o.topic, o.partition, o.epoch, o.next_offset FROM consumer_offsets o "
    "JOIN unnest({1}, {2}) AS k(topic, partition) ON o.topic = k.topic AND o.partition = k.partition "
    'WHERE o.consumer = {0} ORDER BY o.topic COLLATE "C", o.partition'
)
CLAIMS = _CLAIMS.format("$1", "$2::text[]", "$3::int[]")


def claim_arguments(consumer: str, spans: Mapping[TopicPartition, tuple[int, int]]) -> list:
    """The parameters of `CLAIMS`."""
    keys = sorted(spans)
    return [consumer, [t for t, _ in keys], [p for _, p in keys]]


@dataclass(frozen=True)
class ClaimsRead:
    """Where a batch's write statement found the claims (`add_claimed_offsets`): indexes in what `writes.run`
    returns."""

    found: int  # their rows as they stood before the statement
    moved: int  # the partitions whose offsets it moved


def add_claimed_offsets(
    writes: Writes,
    consumer: str,
    claims: Mapping[TopicPartition, Claim],
    spans: Mapping[TopicPartition, tuple[int, int]],
) -> ClaimsRead | None:
    """In the batch's own write statement: read the claims as they stood before it, lock their rows in key order
    (as `claim` does), and move the offsets of the partitions still at the epochs the consumer holds. A claim
    that a rebalance raised after the statement began but committed before the lock was had leaves the row at a
    new epoch, which the update finds and leaves alone; one that comes later waits for the batch to commit.
    `verify_claims` sees either. Under the append lock nothing else moves an offset, so the offsets read are
    where they stand."""
    if not spans:
        return None
    arguments = claim_arguments(consumer, spans)
    found = writes.before(
        f"SELECT json_agg(json_build_array(topic, partition, epoch, next_offset))::text FROM ({_CLAIMS}) AS c",
        *zip(arguments, ("text", "text[]", "int[]"), strict=True),
    )
    keys = list(zip(arguments[1], arguments[2]))  # in claim_arguments' order
    topics = writes.parameter(arguments[1], "text[]")
    partitions = writes.parameter(arguments[2], "int[]")
    offsets = writes.parameter([spans[key][1] for key in keys], "bigint[]")
    # a partition not claimed at all matches no epoch
    epochs = writes.parameter([claims[key].epoch if key in claims else None for key in keys], "bigint[]")
    consumer_name = writes.parameter(consumer, "text")
    locked = (
        "SELECT c.topic, c.partition, k.next_offset, k.epoch FROM consumer_offsets c "
        f"JOIN unnest({topics}, {partitions}, {offsets}, {epochs}) AS k(topic, partition, next_offset, epoch) "
        f"ON c.topic = k.topic AND c.partition = k.partition WHERE c.consumer = {consumer_name} "
        'ORDER BY c.topic COLLATE "C", c.partition FOR UPDATE OF c'
    )
    moved = writes.add(
        f"UPDATE consumer_offsets o SET next_offset = k.next_offset FROM ({locked}) AS k "
        f"WHERE o.consumer = {consumer_name} AND o.topic = k.topic AND o.partition = k.partition "
        "AND o.epoch = k.epoch RETURNING o.topic, o.partition",
        result="json_agg(json_build_array(topic, partition))::text",
    )
    assert moved is not None  # asked for with its result
    return ClaimsRead(found, moved)


def verify_claims(
    claims: Mapping[TopicPartition, Claim],
    spans: Mapping[TopicPartition, tuple[int, int]],
    read: ClaimsRead,
    result: tuple,
) -> None:
    """After the write statement: `check` on the claims it read, then `StaleClaim` for a partition whose offset it
    did not move (claimed again meanwhile). Raising rolls the batch back."""
    check(claims, spans, orjson.loads(result[read.found] or "[]"))
    moved = {(topic, partition) for topic, partition in orjson.loads(result[read.moved] or "[]")}
    if lost := set(spans) - moved:
        raise StaleClaim(lost)


def check(
    claims: Mapping[TopicPartition, Claim],
    spans: Mapping[TopicPartition, tuple[int, int]],
    found: Iterable[tuple[str, int, int, int | None]],
) -> None:
    """Given the (topic, partition, epoch, next_offset) rows of the claims: `StaleClaim` if a partition was claimed
    by another consumer since, `OutOfSequence` if the batch starts before the stored offset."""
    stored = {(topic, partition): (epoch, offset) for topic, partition, epoch, offset in found}
    lost, gaps = [], []
    for key in sorted(spans):
        held, row = claims.get(key), stored.get(key)
        if held is None or row is None or row[0] != held.epoch:
            lost.append(key)
        elif row[1] is not None and spans[key][0] < row[1]:
            gaps.append((key, row[1], spans[key][0]))
    if lost:
        raise StaleClaim(lost)
    if gaps:
        raise OutOfSequence(gaps)


async def advance(
    raw: Raw, consumer: str, claims: Mapping[TopicPartition, Claim], spans: Mapping[TopicPartition, tuple[int, int]]
) -> None:
    """Inside the batch's transaction, before its rows: move the offsets past the batch if every partition is
    still claimed and its records do not start before the stored offset (`verify_claims`; raises as it does).
    `spans` maps a partition to the offset of its first record in the batch and the offset after its last. One
    round trip, whatever the number of partitions (a batch's commit sends it with its rows)."""
    if not spans:
        return
    writes = Writes()
    read = add_claimed_offsets(writes, consumer, claims, spans)
    assert read is not None  # there are spans
    verify_claims(claims, spans, read, await writes.run(raw))
