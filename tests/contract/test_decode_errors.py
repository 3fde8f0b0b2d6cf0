import json
import pickle

import pytest

from ledger.contract import Event, InvalidEvent, MemberRetired, decode_event, decode_line
from ledger.contract.examples import example


@pytest.mark.parametrize(
    "text",
    ['{"event_id": "e1", ', "not json", "", "{'event_id': 'e1'}", '{"a": 1} {"b": 2}'],
)
def test_unparseable_json_keeps_the_raw_text(text):
    with pytest.raises(InvalidEvent) as caught:
        decode_line(text)
    error = caught.value
    assert error.reason == "invalid_event"
    assert error.detail.startswith("invalid JSON: ")
    assert error.payload == text
    assert error.event_id is None


def test_unparseable_bytes_are_kept_as_text():
    raw = b'{"event_id": "\xff\xfe'
    with pytest.raises(InvalidEvent) as caught:
        decode_line(raw)
    assert isinstance(caught.value.payload, str)
    assert caught.value.payload.startswith('{"event_id": "')


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "array"), ('"member.enrolled"', "string"), ("42", "number"), ("null", "null"), ("true", "boolean")],
)
def test_json_that_is_not_an_object_is_rejected(text, kind):
    with pytest.raises(InvalidEvent) as caught:
        decode_line(text)
    assert caught.value.detail == f"event must be a JSON object, got {kind}"
    assert caught.value.payload == json.loads(text)
    assert caught.value.event_id is None


def test_duplicate_keys_are_rejected_not_silently_resolved():
    payload = example("member.retired")
    text = json.dumps(payload)[:-1] + ', "monthly_pension": "1.00"}'
    with pytest.raises(InvalidEvent) as caught:
        decode_line(text)
    assert caught.value.detail.startswith('invalid JSON: Detected duplicate key "monthly_pension" at line 1 column')
    assert caught.value.payload == text


def test_validation_failure_keeps_parsed_payload_and_event_id():
    payload = example("member.retired")
    payload["monthly_pension"] = "1.001"
    text = json.dumps(payload)
    with pytest.raises(InvalidEvent) as caught:
        decode_line(text)
    assert caught.value.payload == payload
    assert caught.value.event_id == "ex-member-retired"


def test_invalid_event_is_a_value_error_and_survives_pickling():
    error = InvalidEvent("x: bad", payload={"x": 1}, event_id="e1")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, copy.payload, copy.event_id) == ("invalid_event", "x: bad", {"x": 1}, "e1")


def test_event_union_is_usable_as_a_pydantic_type():
    from pydantic import TypeAdapter

    event = TypeAdapter(Event).validate_python(example("member.retired"))
    assert isinstance(event, MemberRetired)
    assert decode_event(example("member.retired")) == event


def test_decode_event_rejects_non_dict_python_input():
    with pytest.raises(InvalidEvent) as caught:
        decode_event([example("member.retired")])  # type: ignore[arg-type]
    assert caught.value.detail == "event must be a JSON object, got array"
