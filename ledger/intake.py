"""Input as it arrives (a JSON line, a Kafka value), decoded once and kept with where it came from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from .authority import Signed
from .chain import canonical
from .contract import Event, InvalidEvent, decode_event, decode_json, decode_line, decode_struct, same_values

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


MAX_LINE_BYTES = 1 << 20
"""The largest line of a file or value of a Kafka record read, in bytes, its line end not counted: a larger one
is refused whole before it is parsed (docs/contract-limits.md). An event of the contract at its field maxima is
far smaller."""
KEPT_BYTES = 1024
"""How much of input refused for its size the rejection keeps, beside its size and sha256."""
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Oversized:
    """Input larger than `MAX_LINE_BYTES`, never held whole: its first bytes, its size and its sha256."""

    head: bytes
    size: int
    sha256: str

    def __len__(self) -> int:
        return self.size


class TooLarge(InvalidEvent):
    reason = "too_large"


@dataclass
class Incoming:
    source: str  # file:line, topic/partition/offset
    position: int | str  # what a rejection of unreadable input names: the line number or the offset
    raw: str
    # The event, or (`decode(structs=True)`: settle, ingest, serve) the fast decoder's Struct of it, which reads
    # alike, its canonical bytes written alike (`chain.canonical`); `contract.as_model` gives the event of either.
    event: Event | None = None
    error: InvalidEvent | None = None
    expired: str | None = None  # set when a parked event has waited too long: why it is refused
    # Who sent it, as it proved it (`ledger.authority`), once admitted; kept with the event as it arrives, appended
    # or parked (`BatchRows.keep_signature`), not again when the waiting room releases it.
    signed: Signed | None = None
    claimed: Signed | None = None  # who it says sent it (Kafka headers, or `ingest --producer`), until admitted
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
    assert item.event is not None  # a repeat is of a decoded event
    earlier = decode_canonical(held, "held", item.event.event_id)
    return earlier.event is not None and item.event is not None and same_values(earlier.event, item.event)


def conflicting(item: Incoming, held: str) -> None:
    """Turn `item` into refused input: it is not the event already held under its id."""
    assert item.event is not None  # a conflict is between decoded events
    event_id = item.event.event_id
    before, now = orjson.loads(held), orjson.loads(item.payload)
    differing = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    detail = (
        f"event_id {event_id} is already recorded for a different event (differs in: {', '.join(differing[:6])}); "
        "the event first recorded under it stands. Send a change under a new event_id"
    )
    item.error = ConflictingRepeat(detail, item.raw, event_id)
    item.event = None


def decode(
    raw: str | bytes | Oversized, source: str, position: int | str, line: int | None = None, structs: bool = False
) -> Incoming:
    """`line`: the line of a file `raw` is; `structs`: the event may be the fast decoder's Struct (`decode_line`)."""
    if not isinstance(raw, Oversized):
        raw = _measured(raw)
    if isinstance(raw, Oversized):
        return too_large(raw, source, position)
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        return Incoming(source, position, text.rstrip("\n"), event=decode_line(raw, line, structs=structs))
    except InvalidEvent as error:
        return Incoming(source, position, text.rstrip("\n"), error=error)


def _measured(raw: str | bytes) -> str | bytes | Oversized:
    """`raw`, or what is kept of it when it is larger than a line may be."""
    if len(raw) <= MAX_LINE_BYTES // 4:  # a str of n characters is at most 4n bytes
        return raw
    data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else raw
    data = data.removesuffix(b"\n")
    if len(data) <= MAX_LINE_BYTES:
        return raw
    return Oversized(data[:KEPT_BYTES], len(data), hashlib.sha256(data).hexdigest())


def too_large(raw: Oversized, source: str, position: int | str) -> Incoming:
    """Input refused whole for its size, unparsed. What is kept names it exactly (the sha256 of all of it) and
    shows its start; the same input sent again is a repeat of it, any other a refusal of its own."""
    head = raw.head.decode("utf-8", errors="replace")
    kept = f"{head}... [{raw.size} bytes, sha256 {raw.sha256}]"
    detail = (
        f"{raw.size} bytes, larger than the {MAX_LINE_BYTES} bytes a line or record may have: refused whole, "
        f"unread (sha256 {raw.sha256}); its first {len(raw.head)} bytes are kept"
    )
    return Incoming(source, position, kept, error=TooLarge(detail, kept))


def read_lines(stream: BinaryIO) -> Iterator[bytes | Oversized]:
    """The lines of a binary stream, line ends included; a line larger than `MAX_LINE_BYTES` is never held
    whole in memory but read through in chunks, and given as what is kept of it."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 2)  # room for the largest line and its "\r\n"
        if not line:
            return
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line  # decode measures it again, its line end aside
            continue
        digest, size = hashlib.sha256(line), len(line)
        head = line[:KEPT_BYTES]
        while not line.endswith(b"\n"):
            line = stream.readline(_CHUNK)
            if not line:
                break
            content = line.removesuffix(b"\n")
            digest.update(content)
            size += len(content)
        yield Oversized(head, size, digest.hexdigest())


def decode_canonical(payload: str, source: str, position: int | str, structs: bool = False) -> Incoming:
    """An event from bytes medledger wrote itself (the ledger, the parking area): canonical JSON, money as
    strings, keys unique, so the fast parser is enough; the contract is still checked in full. `structs`: the
    event may be the fast decoder's Struct of it, after the same checks (`decode_line`)."""
    data = payload.encode("utf-8", errors="surrogatepass")
    event = decode_struct(data) if structs else decode_json(data)
    if event is not None:
        return Incoming(source, position, payload, event=event, _payload=payload)
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        return Incoming(source, position, payload, error=InvalidEvent(f"invalid JSON: {error}", payload))
    try:
        return Incoming(source, position, payload, event=decode_event(parsed), _payload=payload)
    except InvalidEvent as error:
        return Incoming(source, position, payload, error=error)


def from_lines(lines: Iterable[str | bytes | Oversized], name: str, structs: bool = False) -> Iterator[Incoming]:
    return from_numbered(enumerate(lines, start=1), name, structs)


def from_numbered(
    lines: Iterable[tuple[int, str | bytes | Oversized]], name: str, structs: bool = False
) -> Iterator[Incoming]:
    """Lines of a file with their numbers (from 1); blank lines are skipped, and counted. `structs`: `decode`'s."""
    for number, line in lines:
        if isinstance(line, Oversized) or line.strip():
            yield decode(line, f"{name}:{number}", number, number, structs)
