"""`settle` reads the fast decoder's Structs (no model instance built for what it takes), and settles exactly as
it settles the models' instances of the same input: the same outputs, refusals and repeats, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.generate import generate
from ledger.codec import encoded
from ledger.intake import from_lines
from ledger.offline import settle_items, settle_lines
from tests.properties.streams import ledger_stream, with_forgeries


def _by_models(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    return list(settle_items(from_lines(lines, "input", structs=False)))


def _printed(records: list[dict[str, Any]]) -> bytes:
    return b"".join(encoded(record) for record in records)


def _lines(events: Iterable[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(event, default=str).encode() + b"\n" for event in events]


def test_settle_hands_the_engine_structs_and_prints_what_the_models_print(engine_saw):
    lines = _lines(generate(4000, seed=5))
    lines += lines[100:140]  # repeats of what was settled
    lines.append(lines[200].replace(b'"occurred_at":"', b'"occurred_at":"1', 1))  # unreadable
    seen = engine_saw
    structs = settle_lines(lines)
    read = list(seen)
    seen.clear()
    models = _by_models(lines)
    assert _printed(structs) == _printed(models)
    assert len(read) > 3500 and sum(not issubclass(kind, msgspec.Struct) for kind in read) < 20  # year closes
    assert not any(issubclass(kind, msgspec.Struct) for kind in seen)


def test_a_repeat_under_another_text_is_compared_by_value_whichever_decoder_read_it():
    """300 and 300.00, a JSON number (read by the models) and a string (read by the fast decoder): one event."""
    enrolled, *_ = generate(200, seed=3)
    again = dict(enrolled, legacy_monthly_credit="180.0")
    number = json.dumps(dict(enrolled)).replace('"legacy_monthly_credit": "180.00"', '"legacy_monthly_credit": 180.0')
    assert number != json.dumps(enrolled)
    conflict = dict(enrolled, legacy_monthly_credit="181.00")
    lines = [*_lines([enrolled, again]), number.encode(), *_lines([conflict])]
    printed = settle_lines(lines)
    assert printed == _by_models(lines)
    assert [record["reason"] for record in printed if "rejected" in record] == ["event_id_conflict"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_hypothesis_streams_settle_alike_from_structs_and_from_models(data):
    stream = data.draw(ledger_stream())
    events, _ = data.draw(with_forgeries(stream))
    lines = _lines(events)
    assert _printed(settle_lines(lines)) == _printed(_by_models(lines))
