"""What `replay --verify` compares a re-derived ledger row with: every column it is stored with.

Each ledger table's rows are written from tuples (`db.projection_store.*_COLUMNS`). Replay builds the same tuples
for the events it replays, reads the stored rows of those events in the same shape, and compares them key by key:
as whole tuples, then column by column only where they differ. A JSON column (jsonb, or a record kept as the text
medledger wrote: `db.verification.JSON_TEXT`) is equal when its text is, or when the stored text is the server's
text of the re-derived value (`jsonb_text`): a jsonb column's, read as text, and a record written before revision
0016, kept as jsonb then, are; any other text differs, even one that parses to the same value. Every other column
is compared as it is. The columns a row is written with are the ones compared, so a column added to a table
and written is compared with no change here; only the columns the database fills itself (a row's number, the time
it was recorded) derive from nothing and are not.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson

from .batch import BatchRows
from .db import projection_store as written
from .db.verification import json_positions
from .intake import decode_canonical
from .pipeline import parked_source
from .records import with_aliases

if TYPE_CHECKING:
    from .contract.envelope import EventBase

# A parked event refused because it waited too long says since when (`pipeline.Parking.expired`): what the
# ledger alone re-derives is the refusal after it.
EXPIRED = "parked since "


@dataclass(frozen=True)
class DerivedTable:
    table: str
    columns: tuple[str, ...]  # as the rows are written
    key: tuple[str, ...]  # one re-derived row a key
    rows: Callable[[BatchRows], list[tuple]]
    where: str = ""  # which of the table's rows derive from an event (of the table aliased `t`)
    by_member: bool = True  # a year-close chunk derives these rows for its members alone
    # A re-derived row (parsed) as the ledger kept it before it kept it as it now does, when it did differently
    earlier: Callable[[tuple], tuple] | None = None

    @cached_property
    def json(self) -> tuple[int, ...]:
        return json_positions(self.table, self.columns)

    @cached_property
    def key_at(self) -> tuple[int, ...]:
        return tuple(self.columns.index(c) for c in self.key)

    def describe(self, row: Sequence[Any]) -> str:
        """`table key=value, ...`, the position aside (a difference is reported at it)."""
        shown = [f"{c}={row[self.columns.index(c)]}" for c in self.key if c != "seq"]
        return " ".join([self.table, ", ".join(shown)]) if shown else self.table


_RECORD = written.SETTLEMENT_COLUMNS.index("record")


def _with_aliases(row: tuple) -> tuple:
    """A settlement row as the ledger kept it before it kept settlements in our names alone: its record with the
    national aliases beside them. The record as written or parsed; returned parsed."""
    record = row[_RECORD]
    return (
        *row[:_RECORD],
        with_aliases(orjson.loads(record) if isinstance(record, str) else record),
        *row[_RECORD + 1 :],
    )


SETTLEMENTS = DerivedTable(
    "ledger_settlements",
    written.SETTLEMENT_COLUMNS,
    ("settlement_id",),
    lambda rows: rows.settlements,
    earlier=_with_aliases,
)
DERIVED = (
    SETTLEMENTS,
    DerivedTable("ledger_movements", written.MOVEMENT_COLUMNS, ("movement_id",), lambda rows: rows.movements),
    DerivedTable("ledger_incentives", written.INCENTIVE_COLUMNS, ("seq", "member_id"), lambda rows: rows.incentives),
    # Input that never became an event is kept as received, with no position: nothing derives it.
    DerivedTable(
        "ledger_rejections",
        written.REJECTION_COLUMNS,
        ("seq",),
        lambda rows: [row for row in rows.rejections if row[0] is not None],
        where=" AND t.seq IS NOT NULL",
        by_member=False,
    ),
)
# Filled by the database as a row is written, from no input: the row's number and when it was recorded; and
# when, and in which order, an event arrived in the waiting room (when is checked where it was refused for
# waiting too long: see `_expired_as_derived`).
NOT_DERIVED = {"ledger_rejections": ("rejection_id", "recorded_at"), "parked_events": ("parked_at", "arrival")}
PARKED = ("event_id", "region", "member_id", "payload", "source")


def parked_differences(row: Sequence[Any]) -> tuple[int, str, str] | None:
    """(position, what, detail) when a parked event's row (`db.verification.PARKED_ROWS`) is not what its bytes
    say or, once released into the ledger, not the event the ledger holds under its id."""
    event_id, region, member_id, payload, source, _arrival, seq, *appended = row
    stored = (event_id, region, member_id, payload, parked_source(source, event_id))
    if seq is not None:
        expected, said = (event_id, *appended), "ledger"
    else:
        item = decode_canonical(payload, parked_source(source, event_id), event_id)
        event = item.event
        if item.error is not None or event is None:
            return None  # bytes this version no longer reads: refused as received when released
        expected, said = (
            (event.event_id, event.region, getattr(event, "member_id", None), payload, stored[4]),
            "payload",
        )
    if stored == expected:
        return None
    changed = "; ".join(
        f"{name}: parked {_short(found)} vs {said} {_short(ours)}"
        for name, found, ours in zip(PARKED, stored, expected, strict=True)
        if found != ours
    )
    return seq or 0, f"parked_events event_id={event_id}", changed


# The columns of an event's ledger row that repeat what its payload says (the payload itself, its position and
# its hash are the chain's to check, its parameter set the adoptions').
EVENT_COLUMNS = "event_id, event_type, region, member_id, occurred_at"


def event_columns(event: EventBase, stored: Sequence[Any]) -> str:
    """How the columns of an event's ledger row differ from what its payload says ("" when they do not)."""
    said = (event.event_id, event.event_type, event.region, getattr(event, "member_id", None), event.occurred_at)
    if tuple(stored) == said:
        return ""
    names = EVENT_COLUMNS.split(", ")
    return "; ".join(
        f"{name}: ledger {_short(found)} vs payload {_short(ours)}"
        for name, found, ours in zip(names, stored, said, strict=True)
        if found != ours
    )


def _parsed(row: Sequence[Any], json: tuple[int, ...]) -> tuple:
    if not json:
        return tuple(row)
    values = list(row)
    for n in json:
        if isinstance(values[n], (str, bytes)):
            try:
                value = orjson.loads(values[n])
            except orjson.JSONDecodeError:  # a stored record that is no longer JSON: compared, and shown, as text
                continue
            if not _deeper_than(value, NESTING):  # nor one nested deeper than a record is: repr() would recurse
                values[n] = value
    return tuple(values)


# Levels of nesting a record is compared, and shown, as a parsed value within (a record has three or four).
NESTING = 32


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether `value` nests lists and objects more than `levels` deep (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth >= levels:
                return True
            stack.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return False


def differences(
    spec: DerivedTable,
    derived: list[tuple],
    stored: Iterable[Sequence[Any]],
    parked_since: dict[str, datetime] | None = None,
    unequal: set[tuple] | None = None,
    deferred: list[tuple[tuple, Sequence[Any]]] | None = None,
) -> Iterator[tuple[int, str, str]]:
    """(position, what, detail) of each re-derived row that is not stored as it is derived, and of each stored
    row that nothing re-derives. `parked_since`: when each refused parked event was parked, by event id. A row
    is parsed only as it is compared, so a batch holds no second copy of its rows. `unequal`: where the (key,
    region) of each row of these, on either side, is put. `deferred`: where each (re-derived row, stored row) that
    differs in the text of its JSON columns alone is put instead, to be asked of the server whether the ledger
    holds its text of the re-derived value (`db.verification.in_server_text`), and the others `judged`."""
    at, json, seq_at, region_at = spec.key_at, spec.json, spec.columns.index("seq"), spec.columns.index("region")
    theirs: dict[tuple, list[Sequence[Any]]] = defaultdict(list)
    for row in stored:  # no key column is jsonb
        theirs[tuple([row[n] for n in at])].append(row)
    unequal = set() if unequal is None else unequal
    for row in derived:
        key = tuple([row[n] for n in at])
        found = theirs.pop(key, None)
        if found is None:
            unequal.add((key, row[region_at]))
            yield row[seq_at], spec.describe(row), "re-derived but not in the ledger"
        elif len(found) > 1:
            unequal.update((key, r[region_at]) for r in (row, *found))
            yield row[seq_at], spec.describe(row), f"{len(found)} rows in the ledger where one is re-derived"
        elif tuple(kept := found[0]) != row:
            if deferred is not None and _text_alone(json, row, kept):
                deferred.append((row, kept))
            elif shown := _difference(spec, json, row, kept, parked_since or {}):
                unequal.update(((key, row[region_at]), (key, kept[region_at])))
                yield row[seq_at], spec.describe(row), shown
    for key, rows in theirs.items():
        for row in rows:
            unequal.add((key, row[region_at]))
            yield row[seq_at], spec.describe(row), "in the ledger but not re-derived"


def judged(
    spec: DerivedTable,
    pairs: Iterable[tuple[tuple, Sequence[Any]]],
    parked_since: dict[str, datetime] | None = None,
    unequal: set[tuple] | None = None,
) -> Iterator[tuple[int, str, str]]:
    """`differences` of (re-derived row, stored row) pairs it deferred."""
    at, seq_at, region_at = spec.key_at, spec.columns.index("seq"), spec.columns.index("region")
    for row, kept in pairs:
        if shown := _difference(spec, spec.json, row, kept, parked_since or {}):
            if unequal is not None:
                key = tuple([row[n] for n in at])
                unequal.update(((key, row[region_at]), (key, kept[region_at])))
            yield row[seq_at], spec.describe(row), shown


def _text_alone(json: tuple[int, ...], derived: Sequence[Any], stored: Sequence[Any]) -> bool:
    """Whether `stored` differs from `derived` in the text of its JSON columns (at `json`) alone."""
    return all(
        ours == theirs or (n in json and isinstance(ours, str) and isinstance(theirs, str))
        for n, (ours, theirs) in enumerate(zip(derived, stored, strict=True))
    )


def _difference(
    spec: DerivedTable, json: tuple[int, ...], row: tuple, kept: Sequence[Any], parked_since: dict[str, datetime]
) -> str:
    """What differs between a re-derived row and the stored row of its key ("" when it is kept as derived)."""
    if _kept(json, row, kept):
        return ""
    if spec.earlier is not None and _kept(json, spec.earlier(row), kept):  # kept as it was before
        return ""
    ours, stored_row = _parsed(row, json), _parsed(kept, json)
    changed = _changed(spec, ours, stored_row, parked_since)
    if changed and spec.earlier is not None:  # named in the form it comes nearest
        changed = min(changed, _changed(spec, spec.earlier(ours), stored_row, parked_since), key=len)
    # the same values, yet not kept: a record's text that is not one written for it
    return "; ".join(changed or _rewritten(spec, json, row, kept))


def _kept(json: tuple[int, ...], derived: Sequence[Any], stored: Sequence[Any]) -> bool:
    """Whether `stored` is the ledger's row of `derived`: each column equal, but a JSON one (at `json`), which is
    equal when its text is, or when the ledger's is the server's text of the derived value (`jsonb_text`): a record
    written before revision 0016, kept as jsonb, is."""
    for n, (ours, theirs) in enumerate(zip(derived, stored, strict=True)):
        if ours == theirs:
            continue
        if n not in json or not isinstance(theirs, str) or ours is None:
            return False
        value = orjson.loads(ours) if isinstance(ours, (str, bytes)) else ours
        if theirs != jsonb_text(value):
            return False
    return True


def _rewritten(spec: DerivedTable, json: tuple[int, ...], derived: Sequence[Any], stored: Sequence[Any]) -> list[str]:
    """The JSON columns whose text in the ledger is neither the text written nor the server's text of its value,
    though it parses to the same value (a key given twice, other spacing or escapes)."""
    return [
        f"{spec.columns[n]}: the ledger's text is not the record written ({_short(stored[n])} vs replay "
        f"{_short(derived[n])})"
        for n in json
        if not _kept((0,), (derived[n],), (stored[n],))
    ]


# PostgreSQL's escapes in a JSON string it writes (`escape_json`): these, and \u00XX for every other control
# character; every other character as it is.
_JSONB_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPED = re.compile(r'["\\\x00-\x1f]')


class _NoText(Exception):
    """A value whose jsonb text cannot be told from it (a float: jsonb keeps the digits it was given)."""


def jsonb_text(value: Any) -> str | None:
    """The text PostgreSQL gives a jsonb value (`value::jsonb::text`) of this parsed JSON `value`: an object's keys
    by their length in bytes, then bytewise, each once; `, ` and `: ` between; strings escaped as `escape_json`
    does. None for a value it cannot be told of (a float)."""
    try:
        return _jsonb(value)
    except _NoText:
        return None


def _jsonb(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _jsonb_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_jsonb(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        return "{" + ", ".join(f"{_jsonb_string(key)}: {_jsonb(value[key])}" for key in keys) + "}"
    raise _NoText


def _jsonb_string(text: str) -> str:
    return '"' + _ESCAPED.sub(lambda m: _JSONB_ESCAPES.get(m[0]) or f"\\u{ord(m[0]):04x}", text) + '"'


def _changed(spec: DerivedTable, mine: tuple, theirs: tuple, parked_since: dict[str, datetime]) -> list[str]:
    shown: list[str] = []
    for column, ours, found in zip(spec.columns, mine, theirs, strict=True):
        if ours == found or (column == "detail" and _expired_as_derived(theirs, found, ours, spec, parked_since)):
            continue
        if isinstance(ours, dict) and isinstance(found, dict):
            fields = sorted(k for k in ours.keys() | found.keys() if ours.get(k) != found.get(k))
            shown.extend(
                f"{column}.{k}: ledger {_short(found.get(k))} vs replay {_short(ours.get(k))}" for k in fields[:4]
            )
        else:
            shown.append(f"{column}: ledger {_short(found)} vs replay {_short(ours)}")
    return shown


def _expired_as_derived(
    row: tuple, found: object, ours: object, spec: DerivedTable, parked_since: dict[str, datetime]
) -> bool:
    """A refusal of a parked event that waited too long: since when it waited, as parked, then the refusal the
    ledger re-derives. (How long it might wait is the service's setting of the time, recorded nowhere else.)"""
    if not isinstance(found, str) or not isinstance(ours, str) or not found.startswith(EXPIRED):
        return False
    since = parked_since.get(row[spec.columns.index("event_id")])
    if since is None:
        return False
    return found.startswith(f"{EXPIRED}{since.isoformat()} and no enrolment arrived within ") and found.endswith(
        f"; {ours}"
    )


def expired_ids(spec: DerivedTable, stored: Iterable[Sequence[Any]]) -> list[str]:
    """The event ids of stored refusals of parked events that waited too long."""
    if "detail" not in spec.columns:
        return []
    detail, event_id = spec.columns.index("detail"), spec.columns.index("event_id")
    return [row[event_id] for row in stored if isinstance(row[detail], str) and row[detail].startswith(EXPIRED)]


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
