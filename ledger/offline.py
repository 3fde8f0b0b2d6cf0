"""`medledger settle`: the offline audit path. Contract events in order, an in-memory book, one JSON object per
output. The same input always gives the same output, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from policies.engine import Engine
from policies.parameters import ParameterSet
from policies.rejection import Rejected

from .contract import InvalidEvent, decode_line
from .records import rejection_wire, wire


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_plain)


def settle_stream(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> Iterator[dict[str, Any]]:
    engine = Engine(parameters)
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = decode_line(line)
        except InvalidEvent as error:
            yield rejection_wire(error.event_id or number, error.reason, error.detail, error.payload)
            continue
        if event.event_id in seen:
            continue  # a repeat is acknowledged, never applied twice
        seen.add(event.event_id)
        try:
            outputs = engine.apply(event, number)
        except Rejected as rejection:
            yield rejection_wire(event.event_id, rejection.reason, rejection.detail, event.model_dump(mode="json"))
            continue
        for output in outputs:
            yield wire(output)


def settle_lines(lines: Iterable[str | bytes], parameters: ParameterSet | None = None) -> list[dict[str, Any]]:
    return list(settle_stream(lines, parameters))
