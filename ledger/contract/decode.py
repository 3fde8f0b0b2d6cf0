"""Turning wire input (a JSON line or an already-parsed object) into an ``Event``.

Every failure becomes ``InvalidEvent`` carrying what the rejection stream needs: a stable
reason, a sentence naming the field, the payload as received, and the event id if readable.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from typing import Any

import jiter
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from .event import EVENT_TYPES, Event
from .fast import FastDecoder
from .fields import STORABLE, EventId
from .native import native_schema, native_validator

# Built once: constructing the validator is far costlier than using it.
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
# The same contract with its checks inside pydantic-core; what it refuses, _ADAPTER reads again and words.
_NATIVE = native_validator(_ADAPTER.core_schema)
# The same contract read by msgspec from the bytes, into the same instances; what it does not take goes to the above.
_FAST = FastDecoder(native_schema(_ADAPTER.core_schema))

_MAX_SHOWN = 60
# Echoing the input helps with type errors, but not where the input is absent by definition.
_NO_INPUT_ECHO = frozenset({"missing", "extra_forbidden", "required_for_purpose", "required_for_chronic"})
_SCALARS = (str, bytes, int, float, Decimal, type(None))


class InvalidEvent(ValueError):
    reason = "invalid_event"

    def __init__(self, detail: str, payload: Any, event_id: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.payload = payload
        self.event_id = event_id

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would replay only args=(detail,) and lose payload and event_id.
        return (type(self), (self.detail, self.payload, self.event_id))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _describe(error: ErrorDetails) -> str:
    loc = error["loc"]
    if loc and loc[0] in EVENT_TYPES:
        loc = loc[1:]  # the union adds the matched event_type as the first location step
    kind = error["type"]
    if kind == "union_tag_not_found":
        return "event_type: field required"
    if kind == "union_tag_invalid":
        # ctx["tag"] is stringified (7 and "7" look alike), so show the raw value instead.
        given = error["input"]
        if isinstance(given, dict):
            tag = given.get("event_type")
        else:
            tag = error.get("ctx", {}).get("tag")
        return f"event_type: unknown event type {_shown(tag)}"
    if kind == "missing":
        message = "field required"
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == STORABLE:
        message = "must not contain a NUL character (U+0000)"
    elif kind == "string_unicode":
        message = "must not contain a lone surrogate (U+D800 to U+DFFF)"
    else:
        message = error["msg"]
    if kind not in _NO_INPUT_ECHO and isinstance(error["input"], _SCALARS):
        message = f"{message} (got {_shown(error['input'])})"
    path = ".".join(str(step) for step in loc)
    return f"{path}: {message}" if path else message


def _without_echoes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """A list whose items failed also reports itself too short (the failed items were dropped before the
    length check): only the items' own errors are true."""
    failed_lists = {
        tuple(error["loc"][:i]) for error in errors for i, step in enumerate(error["loc"]) if isinstance(step, int)
    }
    return [error for error in errors if not (error["type"] == "too_short" and tuple(error["loc"]) in failed_lists)]


_EVENT_ID: TypeAdapter[str] = TypeAdapter(EventId)


def _event_id(obj: dict[str, Any]) -> str | None:
    """The event id a refusal is filed under, when the input gives a valid one; otherwise it is named by where
    it was read (a line, an offset). An id the contract refuses (a megabyte of text, a NUL) names nothing."""
    value = obj.get("event_id")
    try:
        return _EVENT_ID.validate_python(value)
    except ValidationError:
        return None


def decode_event(obj: dict[str, Any]) -> Event:
    """Validate an already-parsed JSON object (numbers as ``Decimal``/``int``, never float)."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"event must be a JSON object, got {_json_kind(obj)}", payload=obj)
    try:
        return _NATIVE.validate_python(obj)  # an Event: _ADAPTER's own schema
    except ValidationError:
        pass
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        errors = _without_echoes(exc.errors(include_url=False))
        detail = "; ".join(_describe(error) for error in errors)
        raise InvalidEvent(detail, payload=obj, event_id=_event_id(obj)) from None


def decode_json(data: bytes) -> Event | None:
    """The event `data` holds when the fast decoder takes it (nearly all valid input), else None: `decode_line`
    or `decode_event` reads it and words the refusal."""
    return _FAST.decode(data)  # an Event (built as the models build it) or None


def decode_struct(data: bytes) -> Any:
    """What `decode_json` gives, as the fast decoder's Struct of it (`FastDecoder.decode_struct`: the same input
    taken after the same checks, read alike), or None."""
    return _FAST.decode_struct(data)


def decode_line(text: str | bytes, line: int | None = None, *, structs: bool = False) -> Event:
    """Parse one JSON Lines record / Kafka value and validate it. `line`: the line of the file it is, which input
    that is not JSON at all is refused naming (with the column within the line where the parser stopped).
    `structs`: what the fast decoder takes is given as its Struct (`FastDecoder.decode_struct`), which reads as the
    event does (its fields, tag and properties) and which `as_model` makes the event; the rest as the event.

    Numbers with a fraction or exponent arrive as exact ``Decimal``; NaN and Infinity are not JSON; a key given
    twice in one object is refused, because parsers disagree on which one wins, so a duplicated "amount" would
    settle differently depending on who read it."""
    data = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else text
    event = _FAST.decode_struct(data) if structs else _FAST.decode(data)
    if event is not None:
        return event  # an Event: built as the models build it
    try:
        obj = jiter.from_json(data, allow_inf_nan=False, catch_duplicate_keys=True, float_mode="decimal")
    except ValueError as exc:  # a bad byte sequence or a lone surrogate is refused here too
        raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        message = str(exc)
        near = _near(raw, message)
        if line is not None:
            message = _in_file(message, raw, line)
        raise InvalidEvent(f"invalid JSON: {message}{near}", payload=raw) from None
    return decode_event(obj)


def as_model(event: Any) -> Event:
    """The event itself, or the model's instance of a Struct the fast decoder gave (`decode_line(structs=True)`)."""
    return _FAST.as_model(event) if _FAST.is_struct(event) else event


def struct_canonical(struct: Any) -> str:
    """The canonical JSON of the event a Struct the fast decoder gave holds (`ledger.chain.canonical`), written from
    the Struct itself, byte for byte the event's."""
    return _FAST.canonical(struct)


def field_names(event: Any) -> Collection[str]:
    """The names of the fields of `event`'s type, an event's or a Struct's the fast decoder gave."""
    fields: Collection[str] = _STRUCT_FIELDS.get(type(event)) or type(event).model_fields
    return fields


_STRUCT_FIELDS: dict[type[Any], frozenset[str]] = {
    kind: frozenset(kind.__struct_fields__) for kind in _FAST.struct_types()
}


def same_values(one: Any, other: Any) -> bool:
    """Whether two decoded events hold the same values, each an event or the fast decoder's Struct."""
    if type(one) is not type(other):
        return as_model(one) == as_model(other)
    return bool(one == other)


_POSITION = re.compile(r"line (\d+) column (\d+)")


def _in_file(message: str, raw: str, line: int) -> str:
    """The parser's position in one line of a file as the file's line and the column within that line. The parser
    sees the line with its end, so input that ends early stops past it ("line 2 column 0"): at the line's end."""
    found = _POSITION.search(message)
    if not found:
        return message
    column = int(found[2]) if found[1] == "1" else len(raw.rstrip("\r\n"))
    return f"{message[: found.start()]}line {line} column {column}{message[found.end() :]}"


def _near(raw: str, message: str) -> str:
    """What stands at the position the parser names, so the producer sees the offending text itself."""
    found = _POSITION.search(message)
    lines = raw.splitlines()
    if not found or not 0 < int(found[1]) <= len(lines):
        return ""
    snippet = lines[int(found[1]) - 1][max(int(found[2]) - 4, 0) :][:24]
    return f" (near {snippet!r})" if snippet else ""
