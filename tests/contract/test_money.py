import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.contract import InvalidEvent, decode_event, decode_line
from ledger.contract.examples import example


def _retired_line(money_json: str) -> str:
    """A member.retired JSON line whose monthly_pension is the given raw JSON token."""
    payload = example("member.retired")
    payload["monthly_pension"] = "__MONEY__"
    return json.dumps(payload).replace('"__MONEY__"', money_json)


def _pension(money_json: str) -> Decimal:
    return decode_line(_retired_line(money_json)).monthly_pension


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ('"12.50"', "12.50"),
        ("12.50", "12.50"),
        ('"0.10"', "0.10"),
        ("0.10", "0.10"),
        ('"7"', "7"),
        ("7", "7"),
        ("0", "0"),
        ('"0.00"', "0.00"),
        ('"999999999999999.99"', "999999999999999.99"),
    ],
)
def test_money_as_string_or_number_is_an_exact_decimal(token, expected):
    amount = _pension(token)
    assert type(amount) is Decimal
    assert amount == Decimal(expected)
    # Exact, not merely equal: the scale the producer sent is kept.
    assert str(amount) == expected


def test_json_number_0_10_is_never_a_float():
    amount = _pension("0.10")
    assert amount == Decimal("0.10")
    assert amount != Decimal(0.1)  # what a float detour would have produced
    assert amount.as_tuple() == Decimal("0.10").as_tuple()


def test_sums_of_decoded_money_are_exact():
    items = [decode_line(_retired_line(tok)).monthly_pension for tok in ("0.10", "0.20", '"0.30"')]
    assert sum(items, Decimal(0)) == Decimal("0.60")


@pytest.mark.parametrize(
    ("token", "expected"),
    [("1e2", "100"), ("1.5e1", "15"), ("1.25E+1", "12.5"), ("125e-2", "1.25")],
)
def test_json_exponents_are_fine_when_they_resolve_to_two_decimals(token, expected):
    amount = _pension(token)
    assert amount == Decimal(expected)
    assert "E" not in str(amount)


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("1.234", "at most 2 decimal places allowed"),
        ('"1.234"', "at most 2 decimal places allowed"),
        ("1e-3", "at most 2 decimal places allowed"),
        ("-5", "must not be negative"),
        ('"-5.00"', "must not be negative"),
        ("-0.0", "must not be negative"),
        ('"1e2"', "plain decimal number"),
        ('"NaN"', "plain decimal number"),
        ('"Infinity"', "plain decimal number"),
        ('" 12.50"', "plain decimal number"),
        ('"12,50"', "plain decimal number"),
        ('"012.50"', "plain decimal number"),
        ('"12."', "plain decimal number"),
        ('".5"', "plain decimal number"),
        ('"+5"', "plain decimal number"),
        ('"\\uff11\\uff12"', "plain decimal number"),  # full-width digits: Decimal() would accept them
        ("true", "money must be a JSON string or number"),
        ("null", "money must be a JSON string or number"),
        ('["1"]', "money must be a JSON string or number"),
        ("1000000000000000", "must be less than 1000000000000000"),
    ],
)
def test_bad_money_is_rejected_naming_the_field(token, fragment):
    with pytest.raises(InvalidEvent) as caught:
        decode_line(_retired_line(token))
    assert caught.value.detail.startswith("monthly_pension: ")
    assert fragment in caught.value.detail


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_constants_are_not_even_json(token):
    with pytest.raises(InvalidEvent) as caught:
        decode_line(_retired_line(token))
    assert caught.value.detail.startswith("invalid JSON: ")
    assert token in caught.value.detail


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("sNaN")])
def test_non_finite_decimals_from_python_callers_are_rejected(value):
    payload = example("member.retired")
    payload["monthly_pension"] = value
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    assert caught.value.detail.startswith("monthly_pension: money must be a finite number")


def test_python_floats_are_refused_rather_than_rounded():
    payload = example("member.retired")
    payload["monthly_pension"] = 12.5
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    assert "monthly_pension: money must not be a binary float" in caught.value.detail


_integer_part = st.integers(min_value=0, max_value=10**15 - 1).map(str)
_two_decimals = st.text(alphabet="0123456789", min_size=0, max_size=2)
_three_decimals = st.text(alphabet="0123456789", min_size=3, max_size=3)


@given(integer=_integer_part, fraction=_two_decimals, as_number=st.booleans())
def test_any_money_with_at_most_two_decimals_round_trips_exactly(integer, fraction, as_number):
    text = f"{integer}.{fraction}" if fraction else integer
    token = text if as_number else json.dumps(text)
    amount = _pension(token)
    assert amount == Decimal(text)
    assert str(amount) == text
    # And back out again: serialisation keeps the exact string.
    event = decode_line(_retired_line(token))
    assert json.loads(event.model_dump_json())["monthly_pension"] == text


@given(integer=_integer_part, fraction=_three_decimals, as_number=st.booleans())
def test_any_money_with_three_decimals_is_rejected(integer, fraction, as_number):
    text = f"{integer}.{fraction}"
    token = text if as_number else json.dumps(text)
    with pytest.raises(InvalidEvent) as caught:
        decode_line(_retired_line(token))
    assert caught.value.detail.startswith("monthly_pension: at most 2 decimal places allowed")
