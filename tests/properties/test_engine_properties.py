"""Properties over random event streams: what must hold whatever the members do."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.contract import decode_event
from ledger.records import wire
from policies import counters as c
from policies.engine import Engine
from policies.outputs import Settlement
from policies.parameters import load_parameters
from policies.rejection import Rejected
from policies.summary import balance_at_end_of
from tests import builders as b
from tests.properties.streams import member_stream, regions, visit_for

PARAMETERS = load_parameters(Path(__file__).parents[2] / "examples/params/150000-illustrative.toml")
LIMITS = {  # the largest limit any member category has, per counter and region
    (b.NINGXIA, c.GENERAL_FUND): Decimal("4500"),
    (b.WEIHAI, c.GENERAL_BASE): Decimal("1600"),
    (b.WEIHAI, c.COMMON_CHRONIC_BASE): Decimal("1000"),
    (b.NANJING, c.BAND_POSITION): None,  # position may pass 15000; the fund above it is zero
    (b.INNER_MONGOLIA, c.GENERAL_FUND): Decimal("2500"),
}
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(events):
    engine = Engine(PARAMETERS)
    outputs = []
    for seq, event in enumerate(events, start=1):
        try:
            outputs.extend(engine.apply(decode_event(event), seq))
        except Rejected:
            pass
        for member in engine.book.members.values():
            assert member.balance >= 0, member
            for period, values in member.counters.items():
                for name, value in values.items():
                    assert value >= 0, (period, name, value)
    return engine, outputs


@PROFILE
@given(member_stream())
def test_settlements_keep_their_identities_and_bounds(stream):
    region, events = stream
    engine, outputs = run(events)
    for s in (o for o in outputs if isinstance(o, Settlement)):
        record = wire(s)  # the output model re-checks both identities to the fen on construction
        assert s.total_amount == s.fund_paid + s.member_share
        assert s.member_share == s.account_paid + s.cash_paid
        sign = -1 if s.reverses else 1
        assert 0 <= sign * s.fund_paid <= sign * s.in_policy_amount, record
        assert sign * s.deductible_paid >= 0 and sign * s.copay_amount >= 0 and sign * s.over_limit_amount >= 0
        assert s.in_policy_amount == s.deductible_paid + s.fund_paid + s.copay_amount + s.over_limit_amount
        if s.limit_remaining is not None:
            assert s.limit_remaining >= 0
        if s.account_balance_after is not None:
            assert s.account_balance_after >= 0


@PROFILE
@given(member_stream())
def test_yearly_limits_are_never_exceeded(stream):
    region, events = stream
    engine, _ = run(events)
    for member in engine.book.members.values():
        for period, values in member.counters.items():
            for (limit_region, name), limit in LIMITS.items():
                if limit_region == region and limit is not None:
                    assert values.get(name, Decimal(0)) <= limit, (period, name, values)


def _state(member) -> dict:
    """A member's state with zero counters dropped (a reversal leaves zeros where there was nothing) and the
    year-end balances as the statement reads them (a refund may record a year whose balance is the one carried)."""
    state = dataclasses.asdict(member)
    years = range(2022, 2026)
    state["year_balances"] = {year: balance_at_end_of(member, year) for year in years}
    state["counters"] = {
        period: {name: value for name, value in values.items() if value} for period, values in member.counters.items()
    }
    state["counters"] = {period: values for period, values in state["counters"].items() if values}
    return state


@PROFILE
@given(member_stream(), st.data())
def test_settle_then_reverse_returns_the_member_to_the_same_state(stream, data):
    region, events = stream
    engine, _ = run(events)
    member = engine.book.members[(region, "M1")]
    if member.terminated_on is not None:
        return
    before = copy.deepcopy(_state(member))
    last_day = max(event["occurred_at"][:10] for event in events)
    visit = data.draw(visit_for("M1", region, date.fromisoformat(last_day)))
    try:
        engine.apply(decode_event(visit), 10_000)
    except Rejected:
        return
    reversal = b.reversed_visit("M1", region, visit["visit_id"], on=last_day)
    engine.apply(decode_event(reversal), 10_001)
    assert _state(member) == before


@settings(max_examples=40, deadline=None)
@given(regions, st.data())
def test_the_same_stream_gives_the_same_outputs(region, data):
    _, events = data.draw(member_stream(region))
    first = [wire(o) for o in run(events)[1]]
    second = [wire(o) for o in run(events)[1]]
    assert first == second


@settings(max_examples=60, deadline=None)
@given(member_stream())
def test_the_fast_settlement_record_equals_the_validated_model(stream):
    from ledger.records import SettlementRecord, settlement_wire

    _, events = stream
    for output in run(events)[1]:
        if isinstance(output, Settlement):
            assert settlement_wire(output) == SettlementRecord.of(output).wire()
