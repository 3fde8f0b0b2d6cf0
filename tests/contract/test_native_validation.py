"""A valid event is validated inside pydantic-core; anything else reads exactly as the models' own parsers say."""

import sys
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ledger.contract import InvalidEvent, decode_event
from ledger.contract import native as native_module
from ledger.contract.decode import _ADAPTER, _NATIVE
from ledger.contract.examples import example, example_types

_PARSERS = {function.__code__ for function in native_module._NATIVE}


def _python_parsers_called(obj: dict[str, Any]) -> set[str]:
    called: set[str] = set()

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in _PARSERS:
            called.add(frame.f_code.co_qualname)

    sys.setprofile(watch)
    try:
        decode_event(obj)
    finally:
        sys.setprofile(None)
    return called


def _visit_with_everything() -> dict[str, Any]:
    visit = example("visit.submitted")
    visit.update(facility_grade="A", visit_kind="chronic", disease_code="E11.9", account_payer_id="P1")
    visit["items"].append({**visit["items"][0], "out_of_catalog_amount": "1.5", "pre_self_pay_amount": "0"})
    return visit


@pytest.mark.parametrize("event_type", example_types())
def test_a_valid_event_calls_no_python_parser_of_the_contract(event_type):
    assert _python_parsers_called(example(event_type)) == set()


def test_a_valid_visit_with_every_optional_part_calls_no_python_parser():
    visit = _visit_with_everything()
    assert _python_parsers_called(visit) == set()
    enrolled = {**example("member.enrolled"), "designated_facilities": ["F1", "F2"], "remote_pilot": True}
    assert _python_parsers_called(enrolled) == set()


def test_money_as_a_json_number_is_still_taken_by_the_parser():
    posted = {**example("account.contribution_posted"), "individual_amount": Decimal("1E+2")}
    assert decode_event(posted).individual_amount == Decimal("100")


# Values that sit at the edges of what a parser takes: each native check must refuse what its parser refuses,
# and read what it takes to the same value.
_TRICKY: list[Any] = [
    "0",
    "01",
    "0.5",
    "0.123",
    "1e2",
    "-0.00",
    "-1",
    " 1",
    "1\n",
    "١٢",
    "999999999999999.99",
    "1000000000000000",
    "٠",
    "\uff11",
    1,
    0,
    -1,
    True,
    False,
    None,
    1.5,
    Decimal("1.50"),
    Decimal("1E+2"),
    Decimal("-0"),
    Decimal("NaN"),
    "2024-02-29",
    "2023-02-29",
    "0000-01-01",
    "0001-01-01",
    "9999-12-31",
    "2024-1-01",
    "2024-01-01T00:00:00+08:00",
    "2024-03-01T09:30:00+08:00",
    "2024-03-01t09:30:00z",
    "2024-03-01T09:30:00.5Z",
    "2024-03-01T09:30:00.1234567Z",
    "2024-03-01T09:30:00",
    "2024-03-01T24:00:00Z",
    "2024-03-01T23:59:60Z",
    "2024-03-01T09:30:00+08:60",
    "2024-03-01T09:30:00+24:00",
    "2024-03-01T09:30:00-23:59",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "1000-01-01T00:00:00Z",
    "8999-12-31T23:59:59+14:00",
    "2024-00",
    "2024-13",
    "0000-01",
    "0001-01",
    "2024-1",
    "2024-12",
    "640000",
    "371000",
    "employee",
    "EMPLOYEE",
    "general",
    "chronic",
    "drug",
    "A",
    "a",
    "",
    "x" * 65,
    "a\x00b",
    [],
    ["F1"],
    [1],
    {},
    "1",
    10**15,
    10**15 - 1,
    2,
    2.0,
]


def _outcome(read: Any, obj: Any) -> str:
    """Every field's value and type, the instant as its text: pydantic-core's fixed offset is its own tzinfo
    class (equal to datetime.timezone's, and written alike)."""
    try:
        event = read(obj)
        return repr(event.model_copy(update={"occurred_at": event.occurred_at.isoformat()}))
    except ValidationError as error:
        return "refused: " + repr([(e["loc"], e["type"]) for e in error.errors(include_url=False)])


def _variants():
    for event_type in example_types():
        base = example(event_type)
        for field in base:
            if field == "event_type":
                continue
            for value in _TRICKY:
                yield {**base, field: value}
    visit = _visit_with_everything()
    for field in visit["items"][0]:
        for value in _TRICKY:
            yield {**visit, "items": [{**visit["items"][0], field: value}]}
    for value in _TRICKY:
        yield {**visit, "prescription": {"facility_level": 1, "facility_grade": value, "facility_kind": "drug"}}


def test_the_native_validator_takes_nothing_the_models_refuse_and_reads_it_alike():
    taken = 0
    for variant in _variants():
        native = _outcome(_NATIVE.validate_python, variant)
        if native.startswith("refused"):
            continue
        taken += 1
        assert native == _outcome(_ADAPTER.validate_python, variant), variant
    assert taken > 200  # the check is not vacuous: many edge values are valid


def test_what_the_native_validator_refuses_is_worded_by_the_models():
    for variant in _variants():
        try:
            _ADAPTER.validate_python(variant)
        except ValidationError:
            with pytest.raises(InvalidEvent):
                decode_event(variant)
        else:
            assert _outcome(decode_event, variant) == _outcome(_ADAPTER.validate_python, variant)


def test_the_models_stay_complete_and_validate_with_their_own_parsers():
    from ledger.contract import EVENT_CLASSES, VisitItem

    assert all(cls.__pydantic_complete__ for cls in (*EVENT_CLASSES, VisitItem))
    visit = _visit_with_everything()
    model = EVENT_CLASSES[[cls.__name__ for cls in EVENT_CLASSES].index("VisitSubmitted")]
    assert _outcome(model.model_validate, visit) == _outcome(_NATIVE.validate_python, visit)
