"""An in-memory event store: the reference backend for the store contract, and for tests of code above it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from .chain import GENESIS, ChainBreak, verify_links
from .store import DuplicateEvent, EventStore, NewEvent, StoredEvent, UnrecordedParameters, chained


class MemoryEventStore(EventStore):
    def __init__(self) -> None:
        self._events: list[StoredEvent] = []
        self._ids: set[str] = set()
        self.parameters: dict[str, str] = {}

    async def record_parameters(self, digest: str, content: str) -> None:
        self.parameters.setdefault(digest, content)

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        ids = [event.event_id for event in events]
        clashes = (set(ids) & self._ids) | {i for i in ids if ids.count(i) > 1}
        if clashes:
            raise DuplicateEvent(clashes)
        unknown = {event.params_digest for event in events} - set(self.parameters)
        if unknown:
            raise UnrecordedParameters(unknown)
        stored = chained(events, *await self.head())
        self._events.extend(stored)
        self._ids.update(ids)
        return stored

    async def known(self, event_ids: Iterable[str]) -> set[str]:
        return set(event_ids) & self._ids

    async def head(self) -> tuple[int, bytes]:
        return (self._events[-1].seq, self._events[-1].hash) if self._events else (0, GENESIS)

    async def read(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        chosen = [event for event in self._events if event.seq > after]
        return chosen if limit is None else chosen[:limit]

    async def verify(self) -> list[ChainBreak]:
        return list(verify_links((e.seq, e.payload, e.prev_hash, e.hash) for e in self._events))

    def forge(self, seq: int, **columns: Any) -> None:
        """Change a recorded event behind the store's back, as an attacker with write access could."""
        index = next(i for i, e in enumerate(self._events) if e.seq == seq)
        self._events[index] = replace(self._events[index], **columns)

    def remove(self, seq: int) -> None:
        """Delete a recorded event behind the store's back."""
        self._events = [event for event in self._events if event.seq != seq]
