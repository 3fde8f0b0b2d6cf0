"""A ledger stream per region: each region has its own gap-free sequence, hash chain, parameter-set adoptions and
append lock, so writers of different regions never wait for each other.

A row's `seq` names its stream and its position in it: `stream << 40 | position`. A region's stream number is its
admdvs code (`320100` for Nanjing), so the same region has the same numbers on every server and in every run,
whatever order regions first appear in (`stream_number`); stream 0 is the ledger's single chain as it stood before
streams (kept as history, verified from GENESIS as before). So `seq` stays one bigint, unique across the whole ledger,
and every table that refers to an event by it (settlements, movements, incentives, rejections, closed years)
keeps doing so; a stream's rows are one contiguous range of it, read in order by the primary key's index.

A stream starts anchored to the history's head: its genesis is derived from the head's position and hash and the
region, so nothing recorded before the streams can be altered without breaking every stream after it. One root
hash over the heads of all streams pins the whole ledger (`root_hash`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

STREAM_BITS = 40  # positions per stream: about 1.1e12 events
HISTORY = 0  # the stream number of the chain written before streams
# The lock of input that names no region (unreadable lines): refusals of the same bytes are told apart by their
# digest, under one lock, so that a repeat is refused once.
NO_REGION = ""


FIRST_OTHER = 1_000_000  # the stream numbers of regions whose code is not six digits are counted from here


def stream_number(region: str) -> int | None:
    """The stream number of a region with a six-digit admdvs code: the code; None for another code (it is given
    the next number from FIRST_OTHER when it first appears)."""
    if len(region) == 6 and region.isascii() and region.isdigit() and int(region) > 0:
        return int(region)
    return None


def base(stream: int) -> int:
    """The `seq` before a stream's first event: its head while it is empty."""
    return stream << STREAM_BITS


def stream_of(seq: int) -> int:
    return seq >> STREAM_BITS


def position(seq: int) -> int:
    """Where in its stream the event at `seq` is (1 for its first)."""
    return seq & ((1 << STREAM_BITS) - 1)


def genesis(region: str, anchor_seq: int, anchor_hash: bytes) -> bytes:
    """The hash a region's stream starts from: the history's head (`anchor_seq`, `anchor_hash`) and the region."""
    return hashlib.sha256(
        b"medledger stream\x00" + anchor_hash + anchor_seq.to_bytes(8, "big") + region.encode("utf-8")
    ).digest()


def lock_key(region: str) -> int:
    """The advisory lock of a region's stream: a stable signed 64-bit key from the region code (the same in every
    process and release, unlike Python's hash)."""
    digest = hashlib.sha256(b"medledger append\x00" + region.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_order(regions: Iterable[str]) -> list[int]:
    """The keys of the append locks of `regions`, in the one fixed order (by key) whoever takes them, so that two
    batches that share regions cannot each hold a lock the other waits for (`db.streams.locks`)."""
    return sorted({lock_key(region) for region in regions})


def balanced(counts: dict[str, int], workers: int) -> list[list[str]]:
    """Regions shared among at most `workers` groups (at least one), the largest first to the lightest group, so
    that each group has about as many events: a region's stream is worked through by one process."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(workers, len(counts))))]
    loads = [0] * len(groups)
    for region, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        lightest = loads.index(min(loads))
        groups[lightest].append(region)
        loads[lightest] += count
    return groups


@dataclass
class Head:
    """Where a region's stream stands: its number, the last event's `seq` and hash (`base(stream)` and the genesis
    while empty), and the parameter set it adopted last (None before its first adoption)."""

    region: str
    stream: int
    seq: int
    hash: bytes
    adopted: str | None = None

    @property
    def position(self) -> int:
        return position(self.seq)


def root_hash(heads: Iterable[Head]) -> bytes:
    """One hash over every stream's head: sha256 of the lines `region seq hash-hex`, one per stream, sorted by
    region, each ending in a newline. The history is the stream of region `*` (`HISTORY_REGION`)."""
    lines = "".join(f"{h.region} {h.seq} {bytes(h.hash).hex()}\n" for h in sorted(heads, key=lambda h: h.region))
    return hashlib.sha256(lines.encode("utf-8")).digest()


HISTORY_REGION = "*"
ROOT = "root"  # an anchor that is a root hash (`replay --verify --anchor root:HASH`)
