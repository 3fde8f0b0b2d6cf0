"""Every string field has a documented maximum and holds only what PostgreSQL text can store; a line larger than a
line may be is refused whole, before it is parsed."""

import hashlib
import io
import json
import re
from pathlib import Path

import pytest

from ledger.contract import EVENT_TYPES, InvalidEvent, contract_json_schema, decode_event, decode_line
from ledger.contract.examples import example, example_types
from ledger.contract.fields import STORABLE
from ledger.intake import KEPT_BYTES, MAX_LINE_BYTES, Oversized, decode, from_lines, read_lines

LIMITS_DOC = Path(__file__).parents[2] / "docs/contract-limits.md"


def _string_schema(prop):
    """The schema of a property that is free text (itself, its non-null alternative, or its array's items): a
    string with no exact format of its own (a date, a month, money), if it is one."""
    for candidate in (prop, *prop.get("anyOf", ())):
        if candidate.get("type") == "array":
            candidate = candidate["items"]
        exact = "enum" in candidate or "const" in candidate or "format" in candidate
        if candidate.get("type") == "string" and not exact and candidate.get("pattern", STORABLE) == STORABLE:
            return candidate
    return None


def string_fields():
    """(event type, path into the event, maximum) of every free string field, from the published schema."""
    defs = contract_json_schema()["$defs"]
    found = []
    for event_type, cls in EVENT_TYPES.items():
        nested = {"items": defs["VisitItem"]} if event_type == "visit.submitted" else {}
        for name, prop in defs[cls.__name__]["properties"].items():
            if name in nested:
                for inner, inner_prop in nested[name]["properties"].items():
                    string = _string_schema(inner_prop)
                    if string is not None:
                        found.append((event_type, f"{name}.0.{inner}", string.get("maxLength")))
                continue
            string = _string_schema(prop)
            if string is None:
                continue
            path = f"{name}.0" if name == "designated_facilities" else name
            found.append((event_type, path, string.get("maxLength")))
    return found


FIELDS = string_fields()


def _with(event_type, path, value):
    payload = example(event_type)
    if path == "designated_facilities.0":
        payload["designated_facilities"] = ["F1"]
    *parents, last = path.split(".")
    target = payload
    for step in parents:
        target = target[int(step)] if isinstance(target, list) else target[step]
    target[int(last) if isinstance(target, list) else last] = value
    return payload


def _refused(payload):
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    return caught.value


def test_every_string_field_of_the_schema_has_a_maximum_and_refuses_a_nul():
    assert FIELDS, "no string fields found in the schema"
    assert all(maximum is not None for _, _, maximum in FIELDS), [f for f in FIELDS if f[2] is None]
    names = {path.split(".")[-1] if path.startswith("items") else path.split(".")[0] for _, path, _ in FIELDS}
    assert names == {
        "event_id",
        "member_id",
        "beneficiary_id",
        "account_payer_id",
        "visit_id",
        "payment_id",
        "facility_id",
        "designated_facilities",
        "disease_code",
        "item_code",
        "reason",
    }
    for definition in contract_json_schema()["$defs"].values():
        for prop in definition.get("properties", {}).values():
            string = _string_schema(prop)
            assert string is None or string.get("pattern") == STORABLE, prop
    assert STORABLE == r"^[^\x00]*$"  # read alike by JSON Schema validators and by the contract's own


def test_the_documented_maxima_are_the_contracts():
    documented = {}
    for row in re.findall(r"^\| `(\w+)`[^|]*\|[^|]*\| (\d+) \|$", LIMITS_DOC.read_text(encoding="utf-8"), re.M):
        documented[row[0]] = int(row[1])
    enforced = {}
    for _, path, maximum in FIELDS:
        name = path.split(".")[-1] if path.startswith("items") else path.split(".")[0]
        enforced.setdefault(name, set()).add(maximum)
    assert all(len(maxima) == 1 for maxima in enforced.values()), enforced
    assert documented == {name: maxima.pop() for name, maxima in enforced.items()}
    assert documented["event_id"] == 64 and documented["member_id"] == 40  # as the contract has always said


@pytest.mark.parametrize(("event_type", "path", "maximum"), FIELDS, ids=[f"{t}:{p}" for t, p, _ in FIELDS])
def test_a_string_field_takes_its_maximum_and_refuses_one_character_more(event_type, path, maximum):
    decode_event(_with(event_type, path, "界" * maximum))
    error = _refused(_with(event_type, path, "界" * (maximum + 1)))
    assert error.detail.startswith(f"{path}: String should have at most {maximum} characters"), error.detail
    assert error.reason == "invalid_event"


@pytest.mark.parametrize(("event_type", "path", "maximum"), FIELDS, ids=[f"{t}:{p}" for t, p, _ in FIELDS])
def test_a_nul_in_any_string_field_is_refused_naming_the_field(event_type, path, maximum):
    error = _refused(_with(event_type, path, "A\x00B"))
    assert error.reason == "invalid_event"
    assert error.detail.startswith(f"{path}: must not contain a NUL character (U+0000)"), error.detail
    # The same from a JSON line, where the NUL is the escape \u0000.
    line = json.dumps(_with(event_type, path, "A\x00B"))
    assert "\\u0000" in line
    with pytest.raises(InvalidEvent) as caught:
        decode_line(line)
    assert caught.value.detail == error.detail


def test_a_lone_surrogate_is_refused_naming_the_field_or_as_invalid_json():
    error = _refused(_with("visit.submitted", "facility_id", "P\udc00"))
    assert error.detail.startswith("facility_id: "), error.detail
    line = json.dumps(example("visit.submitted")).replace('"P32010000042"', '"P\\udc00"')
    with pytest.raises(InvalidEvent) as caught:
        decode_line(line)
    assert caught.value.detail.startswith("invalid JSON: lone leading surrogate")


def test_a_refusal_names_an_event_id_only_when_it_is_a_valid_one():
    payload = example("member.retired")
    payload["monthly_pension"] = "-1"
    assert _refused(payload).event_id == payload["event_id"]
    for bad in ("x" * 65, "a\x00b", "", 7):
        payload["event_id"] = bad
        assert _refused(payload).event_id is None, bad


def _line_of(size: int) -> bytes:
    """A JSON line of exactly `size` bytes, line end not counted: an otherwise valid event with a long field."""
    payload = example("visit.reversed")
    base = len(json.dumps(payload).encode())
    payload["reason"] = "r" * (len(payload["reason"]) + size - base)
    line = json.dumps(payload).encode()
    assert len(line) == size
    return line


def test_a_line_at_the_limit_is_parsed_and_one_byte_more_is_refused_whole_unread():
    at_limit = decode(_line_of(MAX_LINE_BYTES) + b"\n", "t:1", 1)
    assert at_limit.error.reason == "invalid_event"  # parsed: the contract refuses its 1 MiB reason
    assert at_limit.error.detail.startswith("reason: String should have at most 500 characters")
    line = _line_of(MAX_LINE_BYTES + 1)
    refused = decode(line + b"\n", "t:2", 2)
    digest = hashlib.sha256(line).hexdigest()
    assert refused.event is None and refused.error.reason == "too_large"
    assert refused.error.event_id is None  # unread, so named by its position
    assert f"{MAX_LINE_BYTES + 1} bytes" in refused.error.detail and digest in refused.error.detail
    assert refused.raw == line[:KEPT_BYTES].decode() + f"... [{MAX_LINE_BYTES + 1} bytes, sha256 {digest}]"
    assert refused.error.payload == refused.raw


def test_read_lines_gives_a_huge_line_as_what_is_kept_of_it_and_the_lines_around_it_whole():
    huge = b'{"event_id": "' + b"h" * (5 * MAX_LINE_BYTES) + b'"}'
    small = json.dumps(example("member.retired")).encode()
    stream = io.BytesIO(small + b"\n" + huge + b"\n\n" + small + b"\n" + huge)  # the last without a line end
    lines = list(read_lines(stream))
    assert lines[0] == small + b"\n" and lines[2] == b"\n" and lines[3] == small + b"\n"
    for big in (lines[1], lines[4]):
        assert big == Oversized(huge[:KEPT_BYTES], len(huge), hashlib.sha256(huge).hexdigest())
    items = list(from_lines(read_lines(io.BytesIO(small + b"\n" + huge + b"\n\n" + small)), "f"))
    assert [item.position for item in items] == [1, 2, 4]  # the empty line 3 is skipped, numbering kept
    assert items[1].error.reason == "too_large" and items[0].event == items[2].event
    # The same input given whole (a Kafka value) is refused alike: one path, one identity.
    assert decode(huge, "k", 9).raw == items[1].raw


def test_read_lines_never_holds_a_huge_line_whole():
    class Recorded(io.BytesIO):
        largest = 0

        def readline(self, size=-1):
            assert size > 0, "a line read without a bound"
            line = super().readline(size)
            Recorded.largest = max(Recorded.largest, len(line))
            return line

    list(read_lines(Recorded(b"x" * (8 * MAX_LINE_BYTES) + b"\n{}\n")))
    assert Recorded.largest <= MAX_LINE_BYTES + 2


@pytest.mark.parametrize("event_type", example_types())
def test_every_example_event_is_within_the_limits(event_type):
    assert decode_event(example(event_type)).event_type == event_type


def test_the_published_schema_refuses_what_the_contract_refuses_for_length_and_nul():
    """`medledger schema`, read by an independent JSON Schema validator, holds the same limits."""
    import jsonschema
    from typer.testing import CliRunner

    from ledger.cli import app

    printed = CliRunner().invoke(app, ["schema"])
    assert printed.exit_code == 0
    validator = jsonschema.Draft202012Validator(json.loads(printed.stdout))
    good = example("visit.submitted")
    assert validator.is_valid(good)
    for path, value in (("member_id", "M\x00"), ("facility_id", "F" * 65), ("items.0.item_code", "界" * 51)):
        bad = _with("visit.submitted", path, value)
        assert not validator.is_valid(bad), path
        with pytest.raises(InvalidEvent):
            decode_event(bad)
    assert validator.is_valid(_with("visit.submitted", "facility_id", "F" * 64))
