"""Settling the next batch while the one before it commits.

A batch is settled against what it reads (member states, visits, payments, parked events), and those reads come
from the ledger's projections. The batch before it may still be writing and committing its own changes; what it
changed is kept here, in memory, and read through: its members as it left them, its visits, payments and closed
years, the events it appended or parked. The next batch is written only if, under the append lock, the ledger is
exactly where that batch left it (`Watermark`); otherwise another writer came in between and the batch is settled
again from the ledger. So PostgreSQL writes one batch while Python settles the next, and the result is the same as
settling them one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.book import Book

from .intake import Incoming


@dataclass(frozen=True)
class Watermark:
    """How far the ledger is: its last sequence, the last parking arrival and the last rejection row. Every
    writer that changes what a batch reads moves one of them."""

    seq: int
    arrival: int
    rejection: int


WATERMARK = (
    "SELECT (SELECT coalesce(max(seq), 0) FROM ledger_events), (SELECT coalesce(max(arrival), 0) FROM parked_events), "
    "(SELECT coalesce(max(rejection_id), 0) FROM ledger_rejections)"
)


async def watermark(raw) -> Watermark:
    return Watermark(*await raw.fetchrow(WATERMARK))


class Conflict(RuntimeError):
    """Another writer changed the ledger between a batch's reads and its append: it is settled again."""


@dataclass
class Carry:
    """What a settled batch changed, for the next batch to read through until it has committed."""

    seq: int
    prev_hash: bytes
    arrival: int
    book: Book  # its members, visits, reversals, payments and closed years as the batch left them
    loaded: dict[tuple[str, str], tuple[dict, str]]  # member state JSON as the batch left it, with its digest
    known: set[str] = field(default_factory=set)  # ids appended or parked; digests of unreadable input refused
    appended: set[str] = field(default_factory=set)  # event ids now in the ledger: no longer waiting
    parked: dict[tuple[str, str], list[Incoming]] = field(default_factory=dict)  # newly parked, in arrival order
    rejection: int | None = None  # the last rejection row once the batch has committed

    def end(self) -> Watermark:
        if self.rejection is None:
            raise RuntimeError("the batch carried from has not committed")
        return Watermark(self.seq, self.arrival, self.rejection)
