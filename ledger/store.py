"""The event store: an append-only, hash-chained log with the producer's event_id as idempotency key.

Every backend implements these few methods and passes the same contract tests (tests/store/contract.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .chain import ChainBreak, link


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


class UnrecordedParameters(Exception):
    def __init__(self, digests: Iterable[str]):
        self.digests = sorted(digests)
        super().__init__(f"parameter sets not recorded: {', '.join(self.digests)}")


class DuplicateEvent(Exception):
    def __init__(self, event_ids: Iterable[str]):
        self.event_ids = sorted(event_ids)
        super().__init__(f"already recorded: {', '.join(self.event_ids)}")


class EventStore(ABC):
    @abstractmethod
    async def record_parameters(self, digest: str, content: str) -> None:
        """Keep the parameter set an event is settled under; recording the same digest again is a no-op."""

    @abstractmethod
    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Record `events` after the current head with gap-free sequences and chained hashes. Raises
        DuplicateEvent, recording none of them, when any event_id is already recorded or repeated."""

    @abstractmethod
    async def known(self, event_ids: Iterable[str]) -> set[str]:
        """Which of `event_ids` are already recorded."""

    @abstractmethod
    async def head(self) -> tuple[int, bytes]:
        """(last sequence, its hash); (0, GENESIS) when empty."""

    @abstractmethod
    async def read(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events with seq > `after`, in sequence order."""

    @abstractmethod
    async def verify(self) -> list[ChainBreak]:
        """Every place where the chain does not hold; empty when the ledger is intact."""
