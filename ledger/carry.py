"""Settling the next batch while the one before it commits.

A batch is settled against what it reads (member states, visits, payments, parked events), and those reads come
from the ledger's projections. The batch before it may still be writing and committing its own changes; what it
changed is kept here, in memory, and read through: its members as it left them, its visits, payments and closed
years, the events it appended or parked. The next batch commits only if, under its regions' append locks, the
ledger is exactly where that batch left it for the regions it settles (`Watermark`, read by the batch's own write
statement); otherwise another writer came in between, the batch's transaction rolls back, and the batch is settled
again from the ledger. So PostgreSQL writes one batch while Python settles the next, and the result is the same
as settling them one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from policies.book import Book

from .chain import text_digest
from .intake import Incoming
from .streams import Head


@dataclass(frozen=True)
class Watermark:
    """How far the ledger is for a batch of some regions (`ledger.streams`): each region's head and last parking
    arrival (`region:value`, in region order), how many of the bytes whose refusal the batch looked up are refused
    (`refused`), and which rebuild of the projections is in place. Every writer that changes what the batch reads
    moves one of them: a batch of its regions appends or parks, a refusal without a ledger position of bytes the
    batch read as unrefused (a repeat of unreadable input, a parked event it releases), and `projections rebuild`
    truncates the projections, which gives member_state a new relfilenode. A refusal without a position is of
    bytes, not of a region (such input names none, or its id may be any region's): refusals of other bytes, by
    writers of other regions or of the same, move none of them."""

    heads: str
    arrivals: str
    refused: int
    projections: int


def spelled(values: dict) -> str:
    """`region:value,...` in region order, as the watermark's heads and arrivals are spelled
    (`db.streams.HEADS_TEXT` and `ARRIVALS_TEXT`)."""
    return ",".join(f"{region}:{value}" for region, value in sorted(values.items()))


def watermark_of(text: str) -> Watermark:
    return Watermark(*orjson.loads(text))


@dataclass
class Mark:
    """Where a batch leaves the ledger, for the regions it read and those of the batches it was carried from;
    complete once it has committed (the rebuild of the projections it committed on is known then)."""

    heads: dict[str, Head]
    arrivals: dict[str, int]
    projections: int | None = None

    def end(self, heads: dict[str, Head], arrivals: dict[str, int], refused: int) -> Watermark:
        """The watermark a batch settled through this one expects, `heads` and `arrivals` being of its regions and
        `refused` how many of the bytes it looked up are refused once this one committed."""
        if self.projections is None:
            raise RuntimeError("the batch carried from has not committed")
        return Watermark(spelled({r: h.seq for r, h in heads.items()}), spelled(arrivals), refused, self.projections)


class Conflict(RuntimeError):
    """Another writer changed the ledger between a batch's reads and its append: it is settled again."""

    @classmethod
    def moved(cls, expected: Watermark, found: Watermark) -> Conflict:
        return cls(f"the ledger moved from {expected} to {found} while the batch was settled")


@dataclass
class Carry:
    """What a settled batch changed, for the next batch to read through until it has committed."""

    mark: Mark
    book: Book  # its members, visits, reversals, payments and closed years as the batch left them
    loaded: dict[tuple[str, str], str | None]  # the parameter digest of each member's last event as it left them
    payloads: dict[str, str] = field(default_factory=dict)  # canonical bytes of the events appended or parked
    unreadable: set[str] = field(default_factory=set)  # digests of the unreadable input it refused
    # What waits no more: event ids appended, and (event id, payload digest, source) of parked events refused
    # because their own bytes no longer decode. Another input that merely carries a parked event's id ends no wait.
    gone: set[str] = field(default_factory=set)
    refused: set[tuple[str, str, str]] = field(default_factory=set)
    parked: dict[tuple[str, str], list[Incoming]] = field(default_factory=dict)  # newly parked, in arrival order

    def waits_no_more(self, event_id: str, payload: str, source: str) -> bool:
        """Of an event parked before the batch: the batch appended it (these very bytes: another region's event
        under the id ends no wait, see `pipeline.Parking`), or refused its parked bytes."""
        appended = event_id in self.gone and self.payloads.get(event_id) == payload
        return appended or (event_id, text_digest(payload), source) in self.refused
