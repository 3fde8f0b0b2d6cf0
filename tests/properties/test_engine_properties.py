"""Properties over random event streams of several members and regions using every event type: what must hold
whatever the members do, per member type and year; and forged events mixed in change nothing."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ledger.contract import EVENT_TYPES, decode_event
from ledger.records import wire
from policies import counters as c
from policies.engine import Engine
from policies.money import ZERO, fen
from policies.ningxia import chronic_pool
from policies.outputs import Movement, Settlement
from policies.parameters import load_parameters
from policies.rejection import Rejected
from policies.summary import balance_at_end_of
from tests import builders as b
from tests.properties.streams import LIMITS, ledger_stream, regions, visit_for, with_forgeries

PARAMETERS = load_parameters(Path(__file__).parents[2] / "examples/params/150000-illustrative.toml")
PROFILE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclasses.dataclass
class Run:
    engine: Engine
    outputs: list
    refused: dict[str, str]  # event id -> reason
    events: dict[str, dict]  # event id -> the event as sent


def run(events) -> Run:
    engine = Engine(PARAMETERS)
    result = Run(engine, [], {}, {})
    book = engine.book
    for seq, raw in enumerate(events, start=1):
        event = decode_event(raw)
        result.events[event.event_id] = raw
        closed_before = set(book.closed_years)
        try:
            outputs = engine.apply(event, seq)
        except Rejected as refusal:
            result.refused[event.event_id] = refusal.reason
            continue
        result.outputs.extend(outputs)
        if event.event_type == "visit.submitted":  # policy notes §0: a closed year's visit never settles
            assert (event.region, event.business_date.year) not in closed_before, raw
        if event.event_type == "period.year_closed":  # only a year that has ended closes
            assert event.business_date >= date(event.year, 12, 31), raw
        for member in book.members.values():
            assert member.balance >= 0, member
            for period, values in member.counters.items():
                for name, value in values.items():
                    assert value >= 0, (period, name, value)
    return result


# --- what every settlement and movement keeps --------------------------------------------------------------------


@PROFILE
@given(ledger_stream())
def test_settlements_keep_their_identities_and_bounds(stream):
    for s in (o for o in run(stream.events).outputs if isinstance(o, Settlement)):
        record = wire(s)  # the output model re-checks both identities to the fen on construction
        assert s.total_amount == s.fund_paid + s.member_share
        assert s.member_share == s.account_paid + s.cash_paid
        sign = -1 if s.reverses else 1
        assert 0 <= sign * s.fund_paid <= sign * s.in_policy_amount, record
        assert sign * s.deductible_paid >= 0 and sign * s.copay_amount >= 0 and sign * s.over_limit_amount >= 0
        assert s.in_policy_amount == s.deductible_paid + s.fund_paid + s.copay_amount + s.over_limit_amount
        assert sign * s.total_amount <= LIMITS.visit_total_max
        if s.limit_remaining is not None:
            assert s.limit_remaining >= 0
        if s.account_balance_after is not None:
            assert s.account_balance_after >= 0


# The largest credit each purpose can make under the default limits (policies.limits).
CREDIT_MAX = {
    "contribution": fen(LIMITS.contribution_base_max * Decimal("0.02")),  # 2% in every region
    "employer_part": fen(LIMITS.contribution_base_max * Decimal("0.01")),  # 001 第二十三条: at most 1%
    "contribution_correction": fen(LIMITS.contribution_base_max * Decimal("0.03")),
    "retiree_credit": max(LIMITS.legacy_monthly_credit_max, fen(LIMITS.monthly_pension_max * Decimal("0.054"))),
    "health_incentive": Decimal("500"),  # 002 第七条
}


@PROFILE
@given(ledger_stream())
def test_balances_are_their_movements_and_each_month_is_credited_once(stream):
    result = run(stream.events)
    movements = [o for o in result.outputs if isinstance(o, Movement)]
    for member in result.engine.book.members.values():
        own = [m for m in movements if (m.region, m.member_id) == (member.region, member.member_id)]
        signed = sum((m.amount if m.kind == "credit" else -m.amount for m in own), ZERO)
        assert member.balance == signed, (member.member_id, own)
    months: dict[tuple[str, str, str], set[str]] = {}
    for m in movements:
        if m.kind == "credit" and m.purpose in CREDIT_MAX:
            assert m.amount <= CREDIT_MAX[m.purpose], m
        if m.purpose in ("contribution", "employer_part"):
            month = result.events[m.event_id]["month"]
            months.setdefault((m.region, m.member_id, month), set()).add(m.event_id)
    assert all(len(events) == 1 for events in months.values()), months


# --- limits per member type and year -----------------------------------------------------------------------------


def _statuses_during(member, start: date, end: date):
    """The statuses in force on some day from `start` to `end`."""
    in_force = [s for s in member.statuses if s.since <= end]
    return [s for i, s in enumerate(in_force) if i + 1 == len(in_force) or in_force[i + 1].since > start] or [
        member.statuses[0]
    ]


def _max_caps(member, year: int) -> list[Decimal]:
    """Per disease, the largest cap certified for it on or before the end of `year`."""
    return [
        max(step.annual_cap for step in steps if step.annual_cap is not None and step.since <= date(year, 12, 31))
        for steps in member.certifications.values()
        if any(step.annual_cap is not None and step.since <= date(year, 12, 31) for step in steps)
    ]


def _segment_range(member, year: int, segment: int) -> tuple[date, date]:
    starts = [date(year, 1, 1)] + sorted(s for s in member.segment_starts if s.year == year)
    return starts[segment], (starts[segment + 1] if segment + 1 < len(starts) else date(year, 12, 31))


def _bounds(member, year: int, segment: int, params) -> dict[str, Decimal]:
    """The most each counter can hold for this member in this year (or Weihai segment), from the limits of
    every member type they had in it."""
    start, end = _segment_range(member, year, segment)
    types = {s.person_type for s in _statuses_during(member, start, end)}
    retired = {"retired" if t == "retired" else "in_service" for t in types}
    region, caps = member.region, _max_caps(member, year)
    if region == b.NINGXIA:  # 000 第十一条, 第十七条, 第十九条
        return {
            c.GENERAL_FUND: max(params.general_cap[r] for r in retired),
            c.CHRONIC_FUND: chronic_pool(caps, params),
            c.DEDUCTIBLE: max(params.general_deductible["3"], params.chronic_deductible),
        }
    if region == b.WEIHAI:  # 001 第十条, 第十一条, 第十五条
        from policies.weihai import category

        categories = {category(t, t == "retired") for t in types}
        general = {"employee" if cat in ("in_service", "retired") else cat for cat in categories}
        residents = [cat for cat in categories if cat.startswith("resident")]
        bounds = {
            c.GENERAL_BASE: max(params.general_limit[cat] for cat in general),
            c.COMMON_CHRONIC_BASE: max((params.common_chronic_limit[cat] for cat in residents), default=ZERO),
            c.CHRONIC_BASE: sum(caps, ZERO),
        }
        return bounds if segment == 0 else {c.GENERAL_BASE: bounds[c.GENERAL_BASE]}
    if region == b.NANJING:  # 002 第十四条: the bands end at 15000; 第十六条: no special-disease pool configured
        widths = [hi - lo for lo, hi in zip((ZERO, *params.band_bounds), params.band_bounds, strict=False)]
        categories = {"veteran" if t == "veteran_pre1949" else "in_service" for t in types if t != "retired"}
        categories |= {"retired", "retired_70"} if "retired" in types else set()
        best = [
            max(params.band_ratios[cat][setting][i] for cat in categories for setting in ("community", "other"))
            for i in range(len(widths))
        ]
        return {"banded_fund": sum((w * r for w, r in zip(widths, best, strict=True)), ZERO), c.CHRONIC_FUND: ZERO}
    general = params.outpatient.general  # 150000: the configured table's caps
    return {c.GENERAL_FUND: max(general.cap[r] for r in retired), c.CHRONIC_FUND: sum(caps, ZERO)}


@PROFILE
@given(ledger_stream())
def test_yearly_limits_hold_per_member_type_and_year(stream):
    engine = run(stream.events).engine
    checked = 0
    for member in engine.book.members.values():
        for period, values in member.counters.items():
            year, _, segment = period.partition("#")
            policy = engine.book.policies.for_year(member.region, int(year))
            if policy is None:  # no version that year: nothing settles, only an external payment is counted
                assert {name for name, value in values.items() if value} <= {c.EXTERNAL_FUND}, (period, values)
                checked += 1
                continue
            bounds = _bounds(member, int(year), int(segment or 0), policy.params)
            held = dict(values)
            held["banded_fund"] = values.get(c.GENERAL_FUND, ZERO) - values.get(c.FEE_LINE_FUND, ZERO)
            for name, bound in bounds.items():
                assert held.get(name, ZERO) <= bound, (member.member_id, period, name, held, bound)
                checked += 1
    assert checked or not any(m.counters for m in engine.book.members.values())


# --- reversals, determinism, the fast record ---------------------------------------------------------------------


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
@given(ledger_stream(), st.data())
def test_settle_then_reverse_returns_the_member_to_the_same_state(stream, data):
    engine = run(stream.events).engine
    people = [p for p in stream.people if not p.terminated]
    if not people:
        return
    person = data.draw(st.sampled_from(people))
    member = engine.book.members[(person.region, person.member_id)]
    before = copy.deepcopy(_state(member))
    visit = data.draw(visit_for(person.member_id, person.region, stream.last_day))
    try:
        engine.apply(decode_event(visit), 10_000)
    except Rejected:
        return
    last_day = stream.last_day.isoformat()
    reversal = b.reversed_visit(person.member_id, person.region, visit["visit_id"], on=last_day)
    engine.apply(decode_event(reversal), 10_001)
    assert _state(member) == before


@settings(max_examples=30, deadline=None)
@given(regions, st.data())
def test_the_same_stream_gives_the_same_outputs(region, data):
    stream = data.draw(ledger_stream(region))
    first = [wire(o) for o in run(stream.events).outputs]
    second = [wire(o) for o in run(stream.events).outputs]
    assert first == second


@settings(max_examples=40, deadline=None)
@given(ledger_stream())
def test_the_fast_settlement_record_equals_the_validated_model(stream):
    from ledger.records import MovementRecord, SettlementRecord, movement_wire, settlement_wire

    for output in run(stream.events).outputs:
        if isinstance(output, Settlement):
            assert settlement_wire(output) == SettlementRecord.of(output).wire()
            assert list(settlement_wire(output)) == list(SettlementRecord.of(output).wire())  # in the same order
        elif isinstance(output, Movement):
            assert movement_wire(output) == MovementRecord.of(output).wire()
            assert list(movement_wire(output)) == list(MovementRecord.of(output).wire())


def test_the_fast_records_refuse_what_the_validated_models_refuse():
    from ledger.records import MovementRecord, SettlementRecord, movement_wire, settlement_wire

    stream = [b.enrolled("M1", b.NANJING), b.visit("M1", b.NANJING, on="2023-03-01", items=b.drug("100.00"))]
    settlement = next(o for o in run(stream).outputs if isinstance(o, Settlement))
    for broken in (
        dataclasses.replace(settlement, fund_paid=settlement.fund_paid + Decimal("0.001")),
        dataclasses.replace(settlement, cash_paid=settlement.cash_paid + 1),
    ):
        with pytest.raises(ValueError):
            SettlementRecord.of(broken)
        with pytest.raises(ValueError):
            settlement_wire(broken)
    movement = Movement(
        "m", "e", "M1", b.NANJING, "debit", "p", Decimal("1.005"), Decimal(1), None, "x", (), date(2023, 1, 1)
    )
    for broken in (
        movement,
        dataclasses.replace(movement, amount=Decimal(0)),
        dataclasses.replace(movement, amount=Decimal(1), balance_after=Decimal(-1)),
    ):
        with pytest.raises(ValueError):
            MovementRecord.of(broken)
        with pytest.raises(ValueError):
            movement_wire(broken)


def test_a_zero_amount_however_written_reads_as_the_validated_model_writes_it():
    from ledger.records import SettlementRecord, settlement_wire

    stream = [b.enrolled("M1", b.NANJING), b.visit("M1", b.NANJING, on="2023-03-01", items=b.drug("100.00"))]
    settlement = next(o for o in run(stream).outputs if isinstance(o, Settlement))
    for zero in (Decimal("0"), Decimal("0E-7"), Decimal("-0.00"), Decimal("0E+3")):
        odd = dataclasses.replace(settlement, over_limit_amount=zero, limit_remaining=zero)
        assert settlement_wire(odd) == SettlementRecord.of(odd).wire()
        assert settlement_wire(odd)["over_limit_amount"] == "0.00"


# --- forged events -----------------------------------------------------------------------------------------------


def _final(result: Run) -> dict:
    """Where a run ends: every member's state, the visits settled (without their ledger positions), the
    payments, the closed years; and what it published, without positions."""
    book = result.engine.book
    unplaced = [dataclasses.replace(o, ledger_seq=0) if isinstance(o, Settlement) else o for o in result.outputs]
    return {
        "members": {key: _state(member) for key, member in book.members.items()},
        "visits": {key: dataclasses.replace(s, ledger_seq=0) for key, s in book.visits.items()},
        "reversed": set(book.reversed_visits),
        "payments": set(book.payments),
        "closed": set(book.closed_years),
        "outputs": [wire(o) for o in unplaced],
    }


@PROFILE
@given(ledger_stream(), st.data())
def test_forged_events_are_refused_and_change_nothing(stream, data):
    mixed, forged = data.draw(with_forgeries(stream))
    clean, attacked = run(stream.events), run(mixed)
    assert forged <= set(attacked.refused), {i: attacked.refused.get(i) for i in forged}
    assert {i: r for i, r in attacked.refused.items() if i not in forged} == clean.refused
    assert _final(attacked) == _final(clean)


def test_the_streams_use_every_event_type():
    """Each of the contract's event types is in the streams the strategy draws (so the properties cover them)."""
    seen: set[str] = set()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None, phases=[Phase.generate])
    @given(ledger_stream())
    def draw(stream):
        seen.update(event["event_type"] for event in stream.events)

    draw()
    assert seen == set(EVENT_TYPES)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-(10**14), 10**14),
    st.integers(-4, 3),
    st.sampled_from(["limit_remaining", "account_balance_after", "over_limit_amount"]),
)
def test_an_amount_however_written_reads_or_is_refused_as_the_validated_model_does(digits, exponent, name):
    """Two decimals and no exponent is the fast record's own text; any other writing (1E+2, 5.0, 1.234) is
    quantized as the model quantizes it, and one that is not a whole number of fen refused alike."""
    from ledger.records import SettlementRecord, settlement_wire

    stream = [b.enrolled("M1", b.NANJING), b.visit("M1", b.NANJING, on="2023-03-01", items=b.drug("100.00"))]
    settlement = next(o for o in run(stream).outputs if isinstance(o, Settlement))
    odd = dataclasses.replace(settlement, **{name: Decimal(digits).scaleb(exponent)})
    try:
        expected = SettlementRecord.of(odd).wire()
    except ValueError:
        with pytest.raises(ValueError):
            settlement_wire(odd)
        return
    assert settlement_wire(odd) == expected
