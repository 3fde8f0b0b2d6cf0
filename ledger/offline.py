"""`medledger settle`: the offline audit path. Contract events in order, an in-memory book, one JSON object per
output. The same input always gives the same output, byte for byte."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import orjson

from policies.engine import Engine
from policies.outputs import IncentiveEvaluation, Movement, Settlement
from policies.parameters import ParameterSet
from policies.rejection import Rejected

from .chain import canonical, text_digest
from .intake import Incoming, conflicting, decode, from_lines
from .records import rejection_wire, shown_payload, wire


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


class Settling:
    """What `ingest` publishes, without a database: a repeat (of an event, or of the same unreadable input) is
    acknowledged and not applied twice, a different event under an id already given is refused; nothing waits
    for an enrolment, so such an event is rejected.

    An event is held as the text it arrived as: a repeat in the same text is the same event, any other is decoded
    again and compared by value (money as "300" and "300.00" is the same), as `intake.same_event` does."""

    def __init__(self, parameters: ParameterSet | None = None):
        self.engine = Engine(parameters)
        self.seen: set[str] = set()  # digests of unreadable input refused already
        self.held: dict[str, str] = {}  # event id -> the text of the event first given it
        self.tally = Tally()

    def outputs(self, item: Incoming, elsewhere: str | None = None) -> list[dict[str, Any]]:
        """What `item` prints. `elsewhere`: the text of the event its id was first given to, when that event is
        held by another worker (`ledger.spread`)."""
        self.tally.read += 1
        event = item.event
        if event is not None:
            held = self.held.get(event.event_id, elsewhere)
            if held is not None:
                if held == item.raw:
                    self.tally.duplicates += 1
                    return []
                earlier = decode(held, "held", event.event_id).event
                if earlier == event:
                    self.tally.duplicates += 1
                    return []
                conflicting(item, canonical(earlier))
        if item.error is not None:
            key = text_digest(item.raw)
            if key in self.seen:
                self.tally.duplicates += 1
                return []
            self.seen.add(key)
            error = item.error
            self.tally.rejected += 1
            return [
                rejection_wire(error.event_id or item.position, error.reason, error.detail, shown_payload(item.raw))
            ]
        event = item.event
        assert event is not None and isinstance(item.position, int)  # no error: decoded, from a line of a file
        self.held[event.event_id] = item.raw
        try:
            outputs = self.engine.apply(event, item.position)
        except Rejected as rejection:
            self.tally.rejected += 1
            # The canonical bytes are medledger's own JSON (no floats, no lone surrogates): what `shown_payload`
            # would make of them, read by the fast parser.
            return [rejection_wire(event.event_id, rejection.reason, rejection.detail, orjson.loads(item.payload))]
        tally = self.tally
        for output in outputs:
            if isinstance(output, Settlement):
                tally.settlements += 1
            elif isinstance(output, Movement):
                tally.movements += 1
            elif isinstance(output, IncentiveEvaluation):
                tally.incentives += 1
        return [wire(output) for output in outputs]

    def held_text(self, event_id: str) -> str | None:
        return self.held.get(event_id)


def settle_items(items: Iterable[Incoming], parameters: ParameterSet | None = None) -> Iterator[dict[str, Any]]:
    settling = Settling(parameters)
    for item in items:
        yield from settling.outputs(item)


def settle_stream(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> Iterator[dict[str, Any]]:
    return settle_items(from_lines(lines, "input"), parameters)


def settle_lines(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> list[dict[str, Any]]:
    return list(settle_stream(lines, parameters))
