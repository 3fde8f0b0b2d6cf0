"""The fast decoder (msgspec, derived from the models) takes only what the models take, as the same event; what
it does not take the models read and word as before; and it follows the models when they change."""

from __future__ import annotations

import copy
import functools
import json
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

import jiter
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bench.generate import generate
from ledger.chain import canonical
from ledger.contract import decode as decode_module
from ledger.contract import decode_line
from ledger.contract.decode import _ADAPTER, _FAST, _NATIVE
from ledger.contract.envelope import ContractModel
from ledger.contract.examples import example, example_types
from ledger.contract.fast import FastDecoder
from ledger.contract.fields import Code, wire_enum
from ledger.contract.money import Money
from ledger.contract.native import native_schema
from ledger.contract.visit import ItemCategory
from tests.contract.test_native_validation import _TRICKY, _visit_with_everything
from tests.contract.test_native_validation import _variants as _native_variants
from tests.properties.streams import ledger_stream


@dataclass(frozen=True)
class Raw:
    """A JSON literal written into the line as it is (1e400, a lone surrogate's escape)."""

    text: str


def dump(value: Any, style: str = "compact", ascii_only: bool = False) -> str:
    """JSON text of `value` with exact decimals, in one of the layouts producers use."""
    comma, colon = {"compact": (",", ":"), "spaced": (", ", ": "), "loose": (" , ", " : "), "lines": (",\n", ":")}[
        style
    ]
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return (
            "{"
            + comma.join(dump(k, style, ascii_only) + colon + dump(v, style, ascii_only) for k, v in value.items())
            + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + comma.join(dump(v, style, ascii_only) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii_only)


def by_models(data: bytes) -> Any:
    """What the models make of `data`: the event, or None for a refusal (a key given twice, not JSON, ...)."""
    try:
        obj = jiter.from_json(data, allow_inf_nan=False, catch_duplicate_keys=True, float_mode="decimal")
        return _ADAPTER.validate_python(obj)
    except (ValueError, ValidationError):
        return None


def assert_agrees(data: bytes) -> Any:
    """The fast decoder takes `data` only if the models do, and then reads the same event: equal, of the same
    class, the same fields given, the same canonical bytes, and (against the native validator the hot path
    used before) the same values of the same types down to the time zone's class."""
    fast = _FAST.decode(data)
    struct = _FAST.decode_struct(data)
    assert (struct is None) == (fast is None), data
    if fast is None:
        return None
    reference = by_models(data)
    assert reference is not None, data
    assert type(fast) is type(reference), data
    assert fast == reference, data
    assert fast.model_fields_set == reference.model_fields_set, data
    assert canonical(fast) == canonical(reference), data
    native = _NATIVE.validate_python(jiter.from_json(data, catch_duplicate_keys=True, float_mode="decimal"))
    assert repr(fast) == repr(native), data
    assert fast.model_dump() == native.model_dump(), data
    assert_struct_reads_as(struct, reference, data)
    assert same_fields(struct, native), data  # down to the time zone's class, as the fast model
    return fast


def assert_struct_reads_as(struct: Any, model: Any, data: bytes) -> None:
    """The Struct the settle path reads holds what the model holds, field by field (equal values of the same
    types, nested Structs alike), reads its tag and properties alike, and is made back into an equal model that
    dumps to the same canonical bytes."""
    assert _FAST.is_struct(struct), data
    assert _FAST.as_model(struct) == model, data
    # The Struct's own serialiser against the model's: the bytes the hash chain covers, byte for byte.
    assert _FAST.canonical(struct) == canonical(model) == canonical(struct), data
    assert same_fields(struct, model, exact=False), data
    assert struct.event_type == model.event_type and struct.business_date == model.business_date, data
    if hasattr(model, "month_start"):
        assert struct.month_start == model.month_start, data


def same_fields(struct: Any, model: Any, exact: bool = True) -> bool:
    """`exact`: the same repr too (a date-time's time zone of the same class)."""
    if isinstance(model, BaseModel):
        return type(struct).__name__ == f"Fast{type(model).__name__}" and all(
            same_fields(getattr(struct, name), value, exact) for name, value in model.__dict__.items()
        )
    if isinstance(model, tuple):
        return (
            type(struct) is tuple
            and len(struct) == len(model)
            and all(same_fields(one, other, exact) for one, other in zip(struct, model))
        )
    return type(struct) is type(model) and struct == model and (not exact or repr(struct) == repr(model))


# -- valid input: taken, as the same event --


@functools.cache
def _generated() -> tuple[dict[str, Any], ...]:
    return tuple(generate(3000, seed=11))


def _valid_events() -> list[dict[str, Any]]:
    return [example(kind) for kind in example_types()] + [_visit_with_everything()] + copy.deepcopy(list(_generated()))


@pytest.mark.parametrize("style", ["compact", "spaced"])
def test_every_valid_event_is_taken_by_the_fast_decoder_as_the_models_read_it(style):
    taken = left = 0
    for event in _valid_events():
        data = dump(event, style).encode()
        if event["event_type"] in _FAST.left_out:
            assert _FAST.decode(data) is None
            left += 1
            continue
        assert assert_agrees(data) is not None, data
        taken += 1
    assert taken > 2500 and left < 10


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ledger_stream(), st.sampled_from(["compact", "spaced"]))
def test_events_of_every_type_with_every_optional_part_are_taken_as_the_models_read_them(stream, style):
    for event in stream.events:
        data = dump(json.loads(json.dumps(event, default=str)), style).encode()
        assert (assert_agrees(data) is None) == (event["event_type"] in _FAST.left_out), data


def test_only_models_the_derivation_cannot_read_are_left_to_the_models():
    assert _FAST.left_out == {"period.year_closed": "YearClosed: a validator around its fields"}


def test_a_valid_line_is_decoded_without_pydantic_validating_it(monkeypatch):
    class Refuses:
        def validate_python(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("validated by pydantic")

    monkeypatch.setattr(decode_module, "_NATIVE", Refuses())
    monkeypatch.setattr(decode_module, "_ADAPTER", Refuses())
    line = dump(_visit_with_everything()).encode() + b"\n"
    assert decode_line(line).event_type == "visit.submitted"


def test_the_canonical_bytes_written_from_a_struct_are_the_models_for_every_writing_of_an_instant_and_an_amount():
    """Each way the contract lets an instant, a date and an amount be written (UTC as Z, z, +00:00 or -00:00, a
    fraction of any length, offsets either side, money as text or a JSON integer) is dumped as the model dumps it."""
    instants = [
        f"{day}{t}{time}{fraction}{offset}"
        for day in ("1000-01-01", "2024-02-29", "8999-12-31")
        for t in ("T", "t")
        for time in ("00:00:00", "23:59:59")
        for fraction in ("", ".0", ".1", ".120", ".000001", ".999999")
        for offset in ("Z", "z", "+00:00", "-00:00", "+08:00", "-05:30", "+23:59", "-23:59")
    ]
    amounts: list[Any] = ["0", "0.00", "0.1", "300", "300.00", "999999999999999.99", 0, 7, 10**15 - 1]
    base = example("member.retired")
    checked = 0
    for index, instant in enumerate(instants):
        for event in (
            {**base, "occurred_at": instant, "monthly_pension": amounts[index % len(amounts)]},
            {**base, "effective_date": instant[:10], "monthly_pension": amounts[-1 - index % len(amounts)]},
        ):
            data = dump(event).encode()
            struct = _FAST.decode_struct(data)
            assert struct is not None, data
            assert _FAST.canonical(struct) == canonical(by_models(data)), data
            checked += 1
    assert checked == 2 * len(instants)


def test_a_model_dumped_by_a_serialiser_of_its_own_is_left_to_the_models():
    """The Struct's serialiser writes what the models' schema dumps by default; a field dumped its own way (here a
    before-validated field, whose parser the native schema replaces) leaves its model to the models."""
    from pydantic import PlainSerializer

    class Dumped(ContractModel):
        amount: Annotated[Money, PlainSerializer(lambda value: f"{value} yuan")]

    class Plain(ContractModel):
        amount: Money

    assert _fast(Plain).decode_struct(b'{"amount":"1.00"}') is not None
    with pytest.raises(Exception, match="schema with"):
        _fast(Dumped)


# -- every field wrong in each way: never taken unless the models take it, and then alike --


def _variants() -> Any:
    """Each field of each event type (and of a visit's item and prescription) set to each edge value."""
    yield from _native_variants()
    enrolled = {**example("member.enrolled"), "designated_facilities": ["F1", "F2"], "remote_pilot": True}
    payment = {**example("account.payment_requested"), "purpose": "own_medical"}
    for base, names in ((enrolled, ("designated_facilities", "remote_pilot")), (payment, ("beneficiary_id",))):
        for name in names:
            for value in _TRICKY:
                yield {**base, name: value}
            yield {key: given for key, given in base.items() if key != name}
    visit = _visit_with_everything()
    for name in ("facility_level", "facility_kind"):
        for value in _TRICKY:
            yield {**visit, "prescription": {**visit["prescription"], name: value}}


def test_edge_values_in_every_field_are_taken_only_as_the_models_take_them():
    taken = refused = 0
    for variant in _variants():
        for style in ("compact", "spaced"):
            if assert_agrees(dump(variant, style).encode()) is None:
                refused += 1
            else:
                taken += 1
    assert taken > 300 and refused > 3000  # neither side is vacuous


_HOSTILE: list[Any] = [
    Raw("1e400"),
    Raw("1.0"),
    Raw("1E2"),
    Raw("-0"),
    Raw("0.10"),
    Raw("12.345"),
    Raw("100000000000000000000000000000"),
    Raw("-100000000000000000000000000000"),
    Raw('"\\ud800"'),
    Raw('"\\udc00x"'),
    Raw('"\\u0000"'),
    Raw('"a\\u0000b"'),
    Raw('"\\u0031\\u0032"'),
    Raw('"1\\n"'),
    Raw('"E11\\"x"'),
    Raw('"x\\":"'),
    Raw('"\\\\"'),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("true"),
    Raw("null"),
    Raw("[]"),
    Raw("{}"),
    "\U0001f600",
    "é" * 64,
    "é" * 65,
    "a" * 501,
    "2024-03-01T09:30:00+08:00\n",
    "0.00",
    "300",
    "300.00",
    "0",
    "10",
    1.5,
    0.1,
    10**18,
    -(10**18),
    2**63,
    "x",
    "\t",
    ' ":',
]


@st.composite
def mutated(draw: Any) -> bytes:
    """A valid event's line with one to three faults: a field's value, a field missing or unknown, a key given
    twice (also escaped or apart from its colon), a key order or layout changed, the line cut or padded."""
    events = [example(kind) for kind in example_types()] + [_visit_with_everything()] + list(_generated()[:40])
    event = json.loads(json.dumps(draw(st.sampled_from(events)), default=str))  # money as strings: exact
    if event["event_type"] == "visit.submitted" and draw(st.booleans()):
        target = draw(st.sampled_from([event, event["items"][0], *(p for p in [event.get("prescription")] if p)]))
    else:
        target = event
    duplicate = None
    for _ in range(draw(st.integers(1, 3))):
        fault = draw(st.sampled_from(["value", "tricky", "missing", "unknown", "duplicate", "reorder"]))
        name = draw(st.sampled_from(sorted(target)))
        if fault == "value":
            target[name] = draw(st.sampled_from(_HOSTILE))
        elif fault == "tricky":
            target[name] = draw(st.sampled_from(_TRICKY))
        elif fault == "missing":
            target.pop(name)
        elif fault == "unknown":
            target[draw(st.sampled_from(["extra", "Event_id", "amount ", "member_id", "event_type"]))] = "x"
        elif fault == "duplicate":
            duplicate = name
        elif fault == "reorder":
            keys = list(target)
            random.Random(draw(st.integers(0, 99))).shuffle(keys)
            reordered = {key: target[key] for key in keys}
            target.clear()
            target.update(reordered)
        if not target:
            break
    style = draw(st.sampled_from(["compact", "spaced", "loose", "lines"]))
    text = dump(event, style, ascii_only=draw(st.booleans()))
    if duplicate is not None and f'"{duplicate}"' in text:
        key = draw(st.sampled_from([f'"{duplicate}"', '"\\u00' + f"{ord(duplicate[0]):02x}" + duplicate[1:] + '"']))
        again = draw(st.sampled_from(["", "0.01", '"x"', "1"])) or dump(target.get(duplicate), "compact")
        separator = draw(st.sampled_from([":", " :", ": ", "\t:"]))
        at = text.index(f'"{duplicate}"')
        text = text[:at] + key + separator + again + "," + text[at:]
    data = text.encode("utf-8", errors="surrogatepass")
    cut = draw(st.sampled_from(["none", "none", "truncate", "pad", "trail", "bom"]))
    if cut == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "pad":
        data = b" \n" + data + b"\r\n"
    elif cut == "trail":
        data += draw(st.sampled_from([b"x", b"{}", b",", b"\x00", b"\xff"]))
    elif cut == "bom":
        data = b"\xef\xbb\xbf" + data
    return data


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_events_are_taken_only_as_the_models_take_them(data):
    assert_agrees(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_raw_garbage_is_never_taken_unless_the_models_take_it(data):
    assert_agrees(data)


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(rb'\A\{("[a-z_]{1,12}":("[^"\\]{0,8}"|[0-9]{1,3}|true|null),){0,6}"event_type":"[a-z._]{1,30}"\}\Z')
)
def test_json_objects_of_any_shape_are_taken_only_as_the_models_take_them(data):
    assert_agrees(data)


def test_a_key_given_twice_is_left_to_the_models_however_it_is_written():
    visit = dump(_visit_with_everything())
    for again in ('"amount":"1.00",', '"amount" :"1.00",', '"\\u0061mount":"1.00",', '"amount":\t"1.00",'):
        line = visit.replace('"amount":', again + '"amount":', 1).encode()
        assert _FAST.decode(line) is None and by_models(line) is None, line
    twice = visit.replace('{"event_id"', '{"event_type":"visit.submitted","event_id"', 1).encode()
    assert _FAST.decode(twice) is None and by_models(twice) is None


# -- the derivation follows the models --


class Thing(ContractModel):
    kind: Literal["thing"]
    code: Annotated[str, StringConstraints(min_length=1, max_length=4)]
    count: Annotated[int, Field(ge=0)]
    category: Annotated[ItemCategory, wire_enum(ItemCategory)]
    amount: Money
    note: Code | None = None


class TighterThing(Thing):
    """The same model with a constraint added to a field, and a rule across fields."""

    kind: Literal["thing"]
    code: Annotated[str, StringConstraints(min_length=1, max_length=2)]

    @model_validator(mode="after")
    def _small(self) -> TighterThing:
        if self.amount > self.count:
            raise ValueError("amount above count")
        return self


class Other(ContractModel):
    kind: Literal["other"]
    code: str = Field(validation_alias="the_code")

    @field_validator("code")
    @classmethod
    def _upper(cls, value: str) -> str:
        if value != value.upper():
            raise ValueError("upper case only")
        return value


class Before(ContractModel):
    kind: Literal["before"]

    @model_validator(mode="before")
    @classmethod
    def _look(cls, data: Any) -> Any:
        return data


def _fast(model: Any) -> FastDecoder:
    return FastDecoder(native_schema(TypeAdapter(model).core_schema))


def test_the_fast_decoder_reads_a_model_it_is_given():
    fast = _fast(Thing)
    good = {"kind": "thing", "code": "abcd", "count": 3, "category": "drug", "amount": "2.50"}
    line = dump(good).encode()
    thing = fast.decode(line)
    assert thing == Thing.model_validate_json(line)
    assert thing.amount == Decimal("2.50") and thing.category is ItemCategory.DRUG and thing.note is None
    assert thing.model_fields_set == Thing.model_validate_json(line).model_fields_set == set(good)
    wrongs = {"code": "abcde", "count": -1, "category": "food", "amount": "2.505", "note": "", "kind": "other"}
    for name, wrong in wrongs.items():
        bad = dump({**good, name: wrong}).encode()
        assert fast.decode(bad) is None, bad
        with pytest.raises(ValidationError):
            Thing.model_validate_json(bad)


def test_a_constraint_added_to_the_model_is_followed_by_the_fast_decoder():
    line = b'{"kind":"thing","code":"abc","count":3,"category":"drug","amount":"2.50"}'
    assert _fast(Thing).decode(line) is not None
    assert _fast(TighterThing).decode(line) is None  # the code is now at most 2 characters
    with pytest.raises(ValidationError):
        TighterThing.model_validate_json(line)
    shorter = line.replace(b'"abc"', b'"ab"')
    assert _fast(TighterThing).decode(shorter) == TighterThing.model_validate_json(shorter)
    over = shorter.replace(b'"2.50"', b'"3.50"')  # the model's own rule across fields runs too
    assert _fast(TighterThing).decode(over) is None
    with pytest.raises(ValidationError):
        TighterThing.model_validate_json(over)


def test_a_discriminated_union_aliases_and_validators_are_derived_and_unreadable_models_left_out():
    union = Annotated[Union[Thing, Other, Before], Field(discriminator="kind")]  # noqa: UP007
    fast = _fast(union)
    assert set(fast.left_out) == {"before"}
    assert fast.decode(b'{"kind":"other","the_code":"AB"}') == Other(kind="other", the_code="AB")  # type: ignore[call-arg]
    assert fast.decode(b'{"kind":"other","code":"AB"}') is None  # read by its alias only
    assert fast.decode(b'{"kind":"other","the_code":"ab"}') is None  # its validator refuses
    assert fast.decode(b'{"kind":"before"}') is None  # left to the models
    assert fast.decode(b'{"kind":"nothing"}') is None


class Seen(ContractModel):
    """A with-info validator that reports what it sees of the fields before it."""

    kind: Literal["seen"]
    first: Money
    second: Code | None = None
    third: Code | None = Field(default=None, validate_default=True)
    last: Code | None = None

    @field_validator("third")
    @classmethod
    def _sees(cls, value: str | None, info: ValidationInfo) -> str | None:
        data = info.data
        seen = (sorted(data), data.get("first"), data.get("second", "-"), data.get("last", "absent"), len(data))
        if value is None:
            return repr(seen)
        if value == "NEED" and data.get("second") is None:
            raise ValueError("second is required with NEED")
        return value


def test_a_struct_converted_in_place_shows_a_with_info_validator_the_fields_before_it_as_the_models_do():
    fast = _fast(Seen)
    for line in (
        b'{"kind":"seen","first":"1.50"}',
        b'{"kind":"seen","first":"2","second":"AB","last":"CD"}',
        b'{"kind":"seen","first":"3","third":"NEED","second":"X"}',
    ):
        model = Seen.model_validate_json(line)
        struct = fast.decode_struct(line)
        assert fast.decode(line) == model and fast.as_model(struct) == model, line
        assert struct.third == model.third and struct.first == Decimal(model.first), line
    refused = b'{"kind":"seen","first":"3","third":"NEED"}'
    assert fast.decode_struct(refused) is None and fast.decode(refused) is None
    with pytest.raises(ValidationError):
        Seen.model_validate_json(refused)
