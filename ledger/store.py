"""An event as the ledger keeps it: before it is chained (`NewEvent`) and at its place in its region's stream
(`StoredEvent`), linked to the one before it by its hash (`ledger.chain`). The recorder (`ledger.recorder`) is the
way to storage; these are the rows it writes and reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

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


class StoredEvent(NamedTuple):
    """An event at its place in its stream: a ledger_events row, its fields in the table's column order
    (`db.event_store.COLUMNS`), so that the row is written as it is made, with no copy of it."""

    seq: int
    event_id: str
    event_type: str
    region: str
    member_id: str | None
    occurred_at: datetime
    payload: str
    params_digest: str
    prev_hash: bytes
    hash: bytes
    source: str | None


def chain_onto(
    seq: int,
    prev_hash: bytes,
    event_id: str,
    event_type: str,
    region: str,
    member_id: str | None,
    occurred_at: datetime,
    payload: str,
    params_digest: str,
    source: str | None,
) -> StoredEvent:
    """The event recorded at `seq` after the event whose hash is `prev_hash`: its ledger_events row, made once as
    it is written (the per-event work beside it is the hash itself)."""
    return StoredEvent(
        seq,
        event_id,
        event_type,
        region,
        member_id,
        occurred_at,
        payload,
        params_digest,
        prev_hash,
        link(prev_hash, seq, payload),
        source,
    )


def chained(events: Sequence[NewEvent], seq: int, prev_hash: bytes) -> list[StoredEvent]:
    stored = []
    for event in events:
        seq += 1
        stored.append(
            chain_onto(
                seq,
                prev_hash,
                event.event_id,
                event.event_type,
                event.region,
                event.member_id,
                event.occurred_at,
                event.payload,
                event.params_digest,
                event.source,
            )
        )
        prev_hash = stored[-1].hash
    return stored
