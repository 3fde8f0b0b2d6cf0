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
        "account.contribution_corrected",
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


class ConflictingRepeat(InvalidEvent):
    """An event id already held by a different event: the producer reused it, or changed the event and sent it
    again. Refused and kept; the event first recorded under the id is left as it is."""

    reason = "event_id_conflict"


def same_event(held: str, item: Incoming) -> bool:
    """Whether `item` repeats the event whose canonical bytes are `held`: the same bytes, or the same values
    written another way (money as "300" and "300.00", say)."""
    if held == item.payload:
        return True
    earlier = decode_canonical(held, "held", item.event.event_id)
    return earlier.event is not None and earlier.event == item.event


def conflicting(item: Incoming, held: str) -> None:
    """Turn `item` into refused input: it is not the event already held under its id."""
    event_id = item.event.event_id
    before, now = orjson.loads(held), orjson.loads(item.payload)
    differing = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    detail = (
        f"event_id {event_id} is already recorded for a different event (differs in: {', '.join(differing[:6])}); "
        "the event first recorded under it stands. Send a change under a new event_id"
    )
    item.error = ConflictingRepeat(detail, item.raw, event_id)
    item.event = None


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
