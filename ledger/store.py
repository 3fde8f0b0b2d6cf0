"""An event as the ledger keeps it: before it is chained (`NewEvent`) and at its place in its region's stream
(`StoredEvent`), linked to the one before it by its hash (`ledger.chain`). The recorder (`ledger.recorder`) is the
way to storage; these are the rows it writes and reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .chain import link


@dataclass(frozen=True, slots=True)
class NewEvent:
    event_id: str
    event_type: str
    region: str
    member_id: str | None
    occurred_at: datetime
    payload: str  # canonical JSON (ledger.chain.canonical)
    params_digest: str
    source: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    event_id: str
    event_type: str
    region: str
    member_id: str | None
    occurred_at: datetime
    payload: str
    params_digest: str
    source: str | None
    prev_hash: bytes
    hash: bytes


def chain_onto(seq: int, prev_hash: bytes, event: NewEvent) -> StoredEvent:
    """`event` recorded at `seq` after the event whose hash is `prev_hash`."""
    return StoredEvent(
        seq,
        event.event_id,
        event.event_type,
        event.region,
        event.member_id,
        event.occurred_at,
        event.payload,
        event.params_digest,
        event.source,
        prev_hash,
        link(prev_hash, seq, event.payload),
    )


def chained(events: Sequence[NewEvent], seq: int, prev_hash: bytes) -> list[StoredEvent]:
    stored = []
    for event in events:
        seq += 1
        stored.append(chain_onto(seq, prev_hash, event))
        prev_hash = stored[-1].hash
    return stored
