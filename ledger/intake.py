"""Input as it arrives (a JSON line, a Kafka value), decoded once and kept with where it came from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from .chain import canonical
from .contract import Event, InvalidEvent, decode_event, decode_line

# Events that wait for their member's enrolment instead of being refused (parking).
PARKABLE = frozenset(
    {
        "visit.submitted",
        "visit.reversed",
        "account.contribution_posted",
        "account.pension_paid",
        "account.payment_requested",
        "account.external_fund_payment",
    }
)


@dataclass
class Incoming:
    source: str  # file:line, topic/partition/offset
    position: int | str  # what a rejection of unreadable input names: the line number or the offset
    raw: str
    event: Event | None = None
    error: InvalidEvent | None = None
    expired: str | None = None  # set when a parked event has waited too long: why it is refused
    _payload: str | None = field(default=None, repr=False)

    @property
    def payload(self) -> str:
        """Canonical JSON of the event: the bytes the hash chain covers."""
        if self._payload is None:
            self._payload = canonical(self.event)
        return self._payload


def decode(raw: str | bytes, source: str, position: int | str) -> Incoming:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        return Incoming(source, position, text.rstrip("\n"), event=decode_line(raw))
    except InvalidEvent as error:
        return Incoming(source, position, text.rstrip("\n"), error=error)


def decode_canonical(payload: str, source: str, position: int | str) -> Incoming:
    """An event from bytes medledger wrote itself (the ledger, the parking area): canonical JSON, money as
    strings, keys unique, so the fast parser is enough; the contract is still checked in full."""
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        return Incoming(source, position, payload, error=InvalidEvent(f"invalid JSON: {error}", payload))
    try:
        return Incoming(source, position, payload, event=decode_event(parsed), _payload=payload)
    except InvalidEvent as error:
        return Incoming(source, position, payload, error=error)


def from_lines(lines: Iterable[str | bytes], name: str) -> Iterator[Incoming]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield decode(line, f"{name}:{number}", number)
