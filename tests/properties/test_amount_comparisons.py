"""The rules pick the lesser or greater of two amounts by comparison, not by min() and max(): the operand picked
must be the one the builtins pick, digits included, since amounts equal in value (100, 100.00) are written
differently in the explanation lines and the records."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.money import ZERO, fen
from policies.nanjing import band_split
from policies.visit import FundDecision, deductible_due, pay_under_fund_cap

# Few values, written with 0, 1 or 2 decimals, and their sums and differences: ties between equal amounts
# written differently come up often.
AMOUNTS = st.builds(
    lambda units, places, negative: (
        (-1 if negative else 1) * Decimal(units).scaleb(-places).quantize(Decimal(1).scaleb(-places))
    ),
    st.integers(0, 40),
    st.sampled_from([0, 1, 2]),
    st.booleans(),
)
POSITIVE = AMOUNTS.map(abs)
RATIOS = st.sampled_from([Decimal("0.5"), Decimal("0.60"), Decimal("0.755"), Decimal("1")])


def _same(got: Decimal, expected: Decimal) -> bool:
    return got == expected and str(got) == str(expected)


@settings(max_examples=2000, deadline=None)
@given(AMOUNTS, AMOUNTS, AMOUNTS)
def test_the_deductible_due_is_the_operand_min_and_max_pick(amount, threshold, paid):
    assert _same(deductible_due(amount, threshold, paid), min(amount, max(ZERO, threshold - paid)))


@settings(max_examples=2000, deadline=None)
@given(POSITIVE, AMOUNTS, AMOUNTS, RATIOS, AMOUNTS, AMOUNTS)
def test_a_fund_under_its_cap_is_the_operand_min_and_max_pick(eligible, threshold, paid, ratio, cap, used):
    decision = FundDecision()
    uncapped = pay_under_fund_cap(decision, eligible, threshold, paid, ratio, cap, used)
    deductible = min(eligible, max(ZERO, threshold - paid))
    room = max(ZERO, cap - used)
    expected_uncapped = fen((eligible - deductible) * ratio)
    fund = min(expected_uncapped, room)
    assert _same(uncapped, expected_uncapped)
    assert _same(decision.deductible, deductible) and _same(decision.fund, fund)
    assert _same(decision.over_limit, expected_uncapped - fund) and _same(decision.limit_remaining, room - fund)


def _bands_by_builtins(position, amount, bounds):
    pieces, start, end, lower = [], position, position + amount, ZERO
    for index, upper in enumerate((*bounds, None)):
        top = end if upper is None else min(end, upper)
        bottom = max(start, lower)
        if top > bottom:
            pieces.append((index, top - bottom))
        if upper is not None:
            lower = upper
    return pieces


@settings(max_examples=2000, deadline=None)
@given(POSITIVE, POSITIVE, st.sampled_from([(Decimal("10"), Decimal("20.00"), Decimal("30.0")), (Decimal("5"),)]))
def test_band_pieces_are_the_operands_min_and_max_pick(position, amount, bounds):
    got, expected = band_split(position, amount, bounds), _bands_by_builtins(position, amount, bounds)
    assert [(index, str(piece)) for index, piece in got] == [(index, str(piece)) for index, piece in expected]
