"""`medledger settle`: the offline audit path. Contract events in order through the ledger's pipeline, on a
ledger held in memory that records nothing durably; one JSON object per output. The same input always gives the
same output, byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from itertools import islice
from typing import Any

import orjson

from policies.book import Book
from policies.member import MemberState
from policies.outputs import IncentiveEvaluation, Movement, Settlement
from policies.parameters import ParameterSet
from policies.registry import PolicyRegistry

from .batch import BatchRows
from .carry import Carry
from .contract import EventBase
from .intake import Incoming, from_lines
from .pipeline import Pipeline, run_to_end
from .records import rejection_wire, shown_payload, wire
from .repeats import Repeats


@dataclass
class Tally:
    """What a settle run read and printed, for its summary line."""

    read: int = 0  # lines that were not blank
    duplicates: int = 0  # repeats acknowledged: an event again, or the same unreadable input again
    settlements: int = 0
    movements: int = 0
    incentives: int = 0
    rejected: int = 0

    def merge(self, other: Tally) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self) -> str:
        return (
            f"medledger: read {self.read}, duplicates {self.duplicates}, settlements {self.settlements}, "
            f"movements {self.movements}, incentives {self.incentives}, rejected {self.rejected}"
        )


class HeldBook:
    """The ledger of a run that records nothing durably (`recorder.SettlingReads`): the one Book the run's events
    are settled into, its members, visits, payments and closed years held as the objects the rules changed, never
    written out and read back. Nothing waits here for an enrolment."""

    def __init__(self, registry: PolicyRegistry) -> None:
        self.book = Book(registry)

    async def load_book(
        self,
        registry: PolicyRegistry,
        events: Iterable[EventBase],
        loaded: dict[tuple[str, str], str | None] | None = None,
        carry: Carry | None = None,
    ) -> Book:
        return self.book

    async def region_members(self, region: str, size: int) -> AsyncIterator[list[MemberState]]:
        members = self.book.region_members(region)
        for start in range(0, len(members), size):
            yield members[start : start + size]

    async def waiting_for(self, keys: Iterable[tuple[str, str]]) -> Sequence[tuple]:
        return ()

    async def expired_parked(self, cutoff: datetime, limit: int, region: str) -> Sequence[tuple]:
        return ()

    async def held(
        self, event_ids: list[str], ahead_of: Sequence[EventBase] = (), carry: Carry | None = None
    ) -> list[tuple[str, str]]:
        return []  # nothing parked, so nothing released to look up (`Settling` tells repeats apart itself)

    async def visit_facilities(self, event_ids: list[str]) -> dict[str, str | None]:
        return {}


class LineNumbers:
    """Positions for a file: an event is settled at its line (what `ledger_seq` shows)."""

    def next(self, item: Incoming, rows: BatchRows) -> int:
        assert isinstance(item.position, int), f"{item.source}: settled offline, from no line of a file"
        return item.position


class Answers(BatchRows):
    """The rows of a run that keeps nothing: each input's published records, built once and counted, grouped by
    the input they answer; no ledger rows, projections or outbox."""

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally
        self.answers: list[list[dict[str, Any]]] = []
        self._current: list[dict[str, Any]] = []

    def settling(self, item: Incoming) -> None:
        self._current = []
        self.answers.append(self._current)

    def take(self) -> list[list[dict[str, Any]]]:
        answers, self.answers = self.answers, []
        return answers

    def accept(
        self, seq: int, event: EventBase, outputs: list[Settlement | Movement | IncentiveEvaluation], book: Book
    ) -> None:
        tally, current = self.tally, self._current
        for output in outputs:
            kind = type(output)
            if kind is Settlement:
                tally.settlements += 1
            elif kind is Movement:
                tally.movements += 1
            elif kind is IncentiveEvaluation:
                tally.incentives += 1
            current.append(wire(output))

    def reject(
        self,
        seq: int | None,
        event_id: str | None,
        source: str | None,
        reason: str,
        detail: str,
        payload: str,
        shown_id: str | int | None = None,
        policy_id: str | None = None,
        region: str | None = None,
    ) -> None:
        self.tally.rejected += 1
        # With a position, the payload is the event's canonical bytes: medledger's own JSON (no floats, no lone
        # surrogates), what `shown_payload` would make of them, read by the fast parser.
        shown = orjson.loads(payload) if seq is not None else shown_payload(payload)
        named = shown_id if shown_id is not None else event_id
        assert named is not None  # a refusal names its event, or where its input was
        self._current.append(rejection_wire(named, reason, detail, shown))


async def _kept_nowhere(rows: BatchRows, registry: PolicyRegistry) -> None:
    """Nothing is recorded: what a segment published was answered already."""


class Settling:
    """What `ingest` publishes, without a database: the ledger's pipeline (`ledger.pipeline.Pipeline`) run on a
    ledger held in memory (`HeldBook`), with no waiting room, so an event for a member not enrolled yet is refused
    by the rules where `ingest` parks it. Repeats are what they are everywhere (`ledger.repeats`): a repeat (of an
    event, or of the same unreadable input) is acknowledged and not applied twice, a different event under an id
    already given is refused."""

    def __init__(self, parameters: ParameterSet | None = None):
        registry = PolicyRegistry(parameters)
        self.tally = Tally()
        self.repeats = Repeats()
        self.rows = Answers(self.tally)
        rows = self.rows
        self.pipeline = Pipeline(HeldBook(registry), registry, LineNumbers(), _kept_nowhere, rows_for=lambda _: rows)

    def answers(self, items: Sequence[Incoming], elsewhere: Sequence[str | None] = ()) -> list[list[dict[str, Any]]]:
        """What each of `items` prints, in order. `elsewhere`: for each item, the text of the event its id was first
        given to, when that event is held by another worker (`ledger.spread`)."""
        tally = self.tally
        tally.read += len(items)
        repeats = self.repeats
        fresh: list[Incoming] = []
        repeated: list[int] = []  # positions in `items` of the repeats
        for at, item in enumerate(items):
            if repeats.is_repeat(item, elsewhere[at] if elsewhere else None):
                repeated.append(at)
            else:
                fresh.append(item)
        tally.duplicates += len(repeated)
        run_to_end(self.pipeline.run(fresh))
        answers = self.rows.take()
        assert len(answers) == len(fresh), "the pipeline answers each input it settles once"
        for at in repeated:
            answers.insert(at, [])
        return answers

    def held_text(self, event_id: str) -> str | None:
        return self.repeats.held_text(event_id)

    def settle(self, items: Iterable[Incoming]) -> Iterator[dict[str, Any]]:
        """What `items` print, in order, settled a few at a time: each line is settled soon after it was decoded,
        while what it made is still at hand."""
        items = iter(items)
        while batch := list(islice(items, ROUND)):
            for answer in self.answers(batch):
                yield from answer


ROUND = 64  # lines settled at a time by one process


def settle_items(items: Iterable[Incoming], parameters: ParameterSet | None = None) -> Iterator[dict[str, Any]]:
    return Settling(parameters).settle(items)


def settle_stream(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> Iterator[dict[str, Any]]:
    return settle_items(from_lines(lines, "input", structs=True), parameters)


def settle_lines(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> list[dict[str, Any]]:
    return list(settle_stream(lines, parameters))
