"""The hash chain over the ledger: each event's hash covers the previous hash, its sequence and its bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .contract.decode import struct_canonical

GENESIS = bytes(32)


def canonical(event: Any) -> str:
    """The event as canonical JSON: sorted keys, no spaces, UTF-8, money as strings. These are the bytes hashed
    (the same bytes as json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False))."""
    dump = getattr(event, "model_dump", None)
    if dump is None:  # the fast decoder's Struct (`contract.decode_line(structs=True)`)
        return struct_canonical(event)  # the same bytes, written from the Struct without making the event
    return orjson.dumps(dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def text_digest(text: str) -> str:
    """sha256 of UTF-8 text, hex: the name of a parameter set, the identity of unreadable input."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def link(prev_hash: bytes, seq: int, payload: str) -> bytes:
    return hashlib.sha256(prev_hash + seq.to_bytes(8, "big") + payload.encode("utf-8")).digest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def verify_links(
    rows: Iterable[Sequence[Any]], start_hash: bytes = GENESIS, start_seq: int = 0
) -> Iterator[ChainBreak]:
    """Yield a ChainBreak for every row (seq, payload, prev_hash, hash) that does not follow from the one before."""
    expected_prev, expected_seq = start_hash, start_seq
    for seq, payload, prev_hash, stored in rows:
        expected_seq += 1
        if seq != expected_seq:
            yield ChainBreak(seq, f"sequence gap: expected {expected_seq}")
            expected_seq = seq
        if bytes(prev_hash) != expected_prev:
            yield ChainBreak(seq, "prev_hash does not match the previous event's hash")
        if link(bytes(prev_hash), seq, payload) != bytes(stored):
            yield ChainBreak(seq, "hash does not match the event's bytes")
        expected_prev = bytes(stored)
