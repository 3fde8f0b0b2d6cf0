"""`medledger settle`: the offline audit path. Contract events in order, an in-memory book, one JSON object per
output. The same input always gives the same output, byte for byte."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from policies.engine import Engine
from policies.parameters import ParameterSet
from policies.rejection import Rejected

from .chain import text_digest
from .intake import conflicting, from_lines, same_event
from .records import rejection_wire, shown_payload, wire


def settle_stream(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> Iterator[dict[str, Any]]:
    """What `ingest` publishes, without a database: a repeat (of an event, or of the same unreadable input) is
    acknowledged and not applied twice, a different event under an id already given is refused; nothing waits
    for an enrolment, so such an event is rejected."""
    engine = Engine(parameters)
    seen: set[str] = set()
    held: dict[str, str] = {}  # event id -> canonical bytes of the event first given it
    for item in from_lines(lines, "input"):
        if item.event is not None and item.event.event_id in held:
            if same_event(held[item.event.event_id], item):
                continue
            conflicting(item, held[item.event.event_id])
        if item.error is not None:
            key = text_digest(item.raw)
            if key not in seen:
                seen.add(key)
                error = item.error
                yield rejection_wire(
                    error.event_id or item.position, error.reason, error.detail, shown_payload(item.raw)
                )
            continue
        event = item.event
        held[event.event_id] = item.payload
        try:
            outputs = engine.apply(event, item.position)
        except Rejected as rejection:
            yield rejection_wire(event.event_id, rejection.reason, rejection.detail, shown_payload(item.payload))
            continue
        for output in outputs:
            yield wire(output)


def settle_lines(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> list[dict[str, Any]]:
    return list(settle_stream(lines, parameters))
