"""Plausibility limits (policies.limits, docs/policies-limits.md): what an event may say before a rule settles it.
Each refusal is `implausible`, naming the rule and the parameter; a limit at its bound is accepted, a fen above is
not; a parameter file moves a bound and the recorded set keeps it."""

from decimal import Decimal

import pytest

from policies.parameters import parse_parameters
from policies.recorded import policy_values, recorded_parameters
from tests import builders as b

NX, WH, NJ, IM = b.NINGXIA, b.WEIHAI, b.NANJING, b.INNER_MONGOLIA


def refused(out, event, rule, parameter=None):
    r = b.rejected(out, event)
    assert r is not None, f"{event['event_id']} was not refused: {out}"
    assert r["reason"] == "implausible", r
    assert f"rule {rule}" in r["detail"], r
    if parameter is not None:
        assert parameter in r["detail"], r
    assert not b.caused_by(out, event)
    return r


def balance(out, member):
    moved = b.movements(out, member)
    return Decimal(moved[-1]["balance_after"]) if moved else Decimal(0)


# --- contributions -----------------------------------------------------------------------------------------------


def test_a_second_contribution_for_the_same_member_and_month_is_a_conflict_and_credits_nothing():
    first = b.contribution("NJ-C", NJ, "2023-07", "9000.00")
    again = b.contribution("NJ-C", NJ, "2023-07", "9000.00", on="2023-07-20")
    other_month = b.contribution("NJ-C", NJ, "2023-08", "9000.00")
    out = b.settle(b.enrolled("NJ-C", NJ), first, again, other_month)
    assert [m["amount"] for m in b.caused_by(out, first)] == ["180.00"]
    assert b.reason(out, again) == "duplicate_contribution"
    assert (
        "2023-07" in b.rejected(out, again)["detail"]
        and "account.contribution_corrected" in (b.rejected(out, again)["detail"])
    )
    assert [m["amount"] for m in b.caused_by(out, other_month)] == ["180.00"]
    assert balance(out, "NJ-C") == Decimal("360.00")


def test_a_contribution_base_outside_the_bounds_is_implausible():
    low = b.contribution("NX-B", NX, "2023-06", "999.99")
    huge = b.contribution("NX-B", NX, "2023-07", "999999999999999.99")
    at_min = b.contribution("NX-B", NX, "2023-08", "1000.00")
    at_max = b.contribution("NX-B", NX, "2023-09", "60000.00")
    above = b.contribution("NX-B", NX, "2023-10", "60000.01")
    out = b.settle(b.enrolled("NX-B", NX, on="2023-06-01"), low, huge, at_min, at_max, above)
    refused(out, low, "contribution_base_bounds", "640000-2023 limits.contribution_base_min")
    refused(out, huge, "contribution_base_bounds", "640000-2023 limits.contribution_base_max")
    refused(out, above, "contribution_base_bounds", "limits.contribution_base_max")
    assert [m["amount"] for m in b.movements(out, "NX-B")] == ["20.00", "1200.00"]


def test_an_in_service_individual_part_is_base_times_the_versions_rate_to_the_fen():
    right = b.contribution("WH-R", WH, "2023-02", "6543.21")  # 2% = 130.8642 → 130.86
    off_by_a_fen = b.contribution("WH-R", WH, "2023-03", "6543.21", individual="130.87")
    out = b.settle(b.enrolled("WH-R", WH, on="2023-01-01"), right, off_by_a_fen)
    assert b.caused_by(out, right)
    detail = refused(out, off_by_a_fen, "contribution_individual_amount", "individual_rate (001 第二十三条)")["detail"]
    assert "130.86" in detail


def test_a_flexible_worker_pays_at_least_the_accounts_share_of_the_base():
    # 001 第二十五条: a flexible worker pays the whole contribution himself (7.75% of the base in 2023)
    whole = b.contribution("WH-F", WH, "2023-02", "5000.00", individual="387.50", employer="0.00")
    short = b.contribution("WH-F", WH, "2023-03", "5000.00", individual="99.99", employer="0.00")
    out = b.settle(b.enrolled("WH-F", WH, on="2023-01-01", person_type="flexible"), whole, short)
    assert [m["amount"] for m in b.caused_by(out, whole)] == ["100.00"]
    refused(out, short, "contribution_individual_amount", "individual_rate")


# --- corrections -------------------------------------------------------------------------------------------------


def test_a_correction_credits_the_difference_and_a_second_correction_settles_against_the_first():
    posted = b.contribution("NJ-K", NJ, "2023-03", "9000.00")
    up = b.contribution(
        "NJ-K", NJ, "2023-03", "10000.00", on="2023-04-02", event_type="account.contribution_corrected", reason="r1"
    )
    down = b.contribution(
        "NJ-K", NJ, "2023-03", "8000.00", on="2023-04-03", event_type="account.contribution_corrected", reason="r2"
    )
    out = b.settle(b.enrolled("NJ-K", NJ), posted, up, down)
    (credit,) = b.caused_by(out, up)
    assert (credit["kind"], credit["purpose"], credit["amount"]) == ("credit", "contribution_correction", "20.00")
    assert any("r1" in line and "180.00" in line for line in credit["explanation"])
    (debit,) = b.caused_by(out, down)
    assert (debit["kind"], debit["amount"], debit["balance_after"]) == ("debit", "40.00", "160.00")


def test_a_correction_of_a_month_never_posted_is_refused_and_is_bounded_like_a_contribution():
    nothing = b.contribution(
        "NJ-U", NJ, "2023-05", "9000.00", event_type="account.contribution_corrected", reason="no such month"
    )
    posted = b.contribution("NJ-U", NJ, "2023-06", "9000.00")
    huge = b.contribution(
        "NJ-U",
        NJ,
        "2023-06",
        "900000000000.00",
        on="2023-06-20",
        event_type="account.contribution_corrected",
        reason="x",
    )
    out = b.settle(b.enrolled("NJ-U", NJ), nothing, posted, huge)
    assert b.reason(out, nothing) == "unknown_contribution"
    refused(out, huge, "contribution_base_bounds")
    assert balance(out, "NJ-U") == Decimal("180.00")


def test_a_correction_that_would_take_more_than_the_balance_is_refused():
    posted = b.contribution("NJ-D", NJ, "2023-03", "9000.00")
    spent = b.payment("NJ-D", NJ, "150.00", on="2023-03-20")
    down = b.contribution(
        "NJ-D", NJ, "2023-03", "1000.00", on="2023-04-01", event_type="account.contribution_corrected", reason="r"
    )
    out = b.settle(b.enrolled("NJ-D", NJ), posted, spent, down)
    assert b.reason(out, down) == "insufficient_balance"
    assert balance(out, "NJ-D") == Decimal("30.00")


# --- pensions, legacy credits, enrolment -------------------------------------------------------------------------


def test_a_legacy_monthly_credit_above_its_bound_is_refused_at_enrolment():
    forged = b.enrolled("NJ-V", NJ, person_type="veteran_pre1949", legacy_monthly_credit="999999999999.00")
    at_bound = b.enrolled("NJ-W", NJ, person_type="veteran_pre1949", legacy_monthly_credit="1000.00")
    out = b.settle(forged, b.pension("NJ-V", NJ, "2023-02"), at_bound, b.pension("NJ-W", NJ, "2023-02"))
    refused(out, forged, "legacy_monthly_credit_bound", "320100-2023 limits.legacy_monthly_credit_max")
    assert [m["amount"] for m in b.movements(out, "NJ-V")] == []
    assert [m["amount"] for m in b.movements(out, "NJ-W")] == ["1000.00"]


def test_pensions_outside_the_bounds_are_refused_where_they_arrive():
    member = "NJ-P"
    retiring = b.retired(member, NJ, on="2023-03-10", pension="50000.01")
    retiring_ok = b.retired(member, NJ, on="2023-03-11", pension="5000.00")
    paid = b.pension(member, NJ, "2023-05", "50000.01")
    out = b.settle(b.enrolled(member, NJ), retiring, retiring_ok, paid)
    refused(out, retiring, "pension_bounds", "limits.monthly_pension_max")
    assert b.rejected(out, retiring_ok) is None
    refused(out, paid, "pension_bounds", "limits.monthly_pension_max")


def test_an_enrolment_dated_further_ahead_than_the_parameter_allows_is_refused():
    soon = b.enrolled("NJ-S", NJ, on="2023-01-01", effective_date="2023-04-03")  # 92 days ahead
    later = b.enrolled("NJ-L", NJ, on="2023-01-01", effective_date="2023-04-04")
    unborn = b.enrolled("NJ-B", NJ, on="2023-01-01", birth_date="2023-01-02")
    out = b.settle(soon, later, unborn)
    assert b.rejected(out, soon) is None
    refused(out, later, "effective_date_ahead", "limits.effective_days_ahead_max")
    refused(out, unborn, "birth_date_ahead")


def test_an_enrolment_before_any_policy_is_bounded_by_the_first_version():
    early = b.enrolled("NX-E", NX, on="2022-12-01", contribution_base="70000.00")
    out = b.settle(early)
    refused(out, early, "contribution_base_bounds", "640000-2023 limits.contribution_base_max")


# --- chronic caps ------------------------------------------------------------------------------------------------


def test_a_chronic_cap_above_the_regions_bound_is_refused_when_certified_or_adjusted():
    member = "NX-CAP"
    forged = b.chronic_certified(member, NX, "C50", "999999999999999.99")  # just below the contract's 10^15
    real = b.chronic_certified(member, NX, "E11", "3000.00")
    raised = b.cap_adjusted(member, NX, "E11", "100000.01", on="2023-07-01")
    visit = b.chronic_visit(member, NX, "C50", on="2023-07-02", items=[b.line("10000.00")])
    out = b.settle(b.enrolled(member, NX, on="2023-06-01"), forged, real, raised, visit)
    refused(out, forged, "chronic_cap_bound", "640000-2023 limits.chronic_cap_max")
    refused(out, raised, "chronic_cap_bound", "limits.chronic_cap_max")
    assert b.settled(out, visit)["fund_pool"] == "general"  # not certified for C50


# --- per-event maxima --------------------------------------------------------------------------------------------


def test_a_visit_or_a_payment_above_its_per_event_maximum_is_refused():
    member = "NJ-M"
    big_visit = b.visit(member, NJ, on="2023-03-01", items=[b.line("400000.00"), b.line("100000.01")])
    at_max = b.visit(member, NJ, on="2023-03-02", items=[b.line("500000.00")])
    big_payment = b.payment(member, NJ, "100000.01", on="2023-03-03")
    big_external = b.external_fund(member, NJ, "2000000.01", on="2023-03-04")
    out = b.settle(b.enrolled(member, NJ), big_visit, at_max, big_payment, big_external)
    refused(out, big_visit, "visit_total_bound", "320100-2023 limits.visit_total_max")
    assert b.settled(out, at_max)
    refused(out, big_payment, "payment_bound", "limits.payment_max")
    refused(out, big_external, "external_fund_payment_bound", "limits.external_fund_payment_max")


# --- year closes -------------------------------------------------------------------------------------------------


def test_a_year_closes_only_on_or_after_its_last_day():
    member = "NJ-Y"
    early = b.year_closed(NJ, 2023, on="2023-03-01")
    next_year = b.year_closed(NJ, 2024, on="2023-03-01")
    far = b.year_closed(NX, 2030, on="2023-08-01")
    later_visit = b.visit(member, NJ, on="2023-06-01", items=[b.line("100.00")])
    last_day = b.year_closed(NJ, 2023, on="2023-12-31", at="23:00:00")
    out = b.settle(b.enrolled("NJ-Y0", NJ, on="2022-12-01"), b.enrolled(member, NJ), early, next_year, far, later_visit)
    for event, year in ((early, 2023), (next_year, 2024), (far, 2030)):
        assert f"year {year} ends on {year}-12-31" in refused(out, event, "year_close_date")["detail"]
    assert not b.incentives(out) and not b.movements(out)
    assert b.settled(out, later_visit)
    out = b.settle(b.enrolled("NJ-Y0", NJ, on="2022-12-01"), last_day)
    assert b.rejected(out, last_day) is None and b.incentives(out, "NJ-Y0", 2023)


# --- parameters --------------------------------------------------------------------------------------------------


def test_a_parameter_file_moves_a_bound_for_its_version_only():
    parameters = parse_parameters('[policy."320100-2023".limits]\ncontribution_base_max = "80000.00"\n')
    in_2023 = b.contribution("NJ-X", NJ, "2023-12", "70000.00")
    in_2024 = b.contribution("NJ-X", NJ, "2024-01", "70000.00")
    out = b.settle(b.enrolled("NJ-X", NJ), in_2023, in_2024, parameters=parameters)
    assert [m["amount"] for m in b.caused_by(out, in_2023)] == ["1400.00"]
    refused(out, in_2024, "contribution_base_bounds", "320100-2024 limits.contribution_base_max")


def test_the_recorded_parameter_set_holds_every_bound_of_every_version():
    text = recorded_parameters('[policy."640000-2023".limits]\nchronic_cap_max = "20000.00"\n')
    values = policy_values(text, "640000-2023")["limits"]
    assert values["chronic_cap_max"] == "20000.00" and values["effective_days_ahead_max"] == 92
    assert set(values) == {
        "contribution_base_min",
        "contribution_base_max",
        "monthly_pension_min",
        "monthly_pension_max",
        "legacy_monthly_credit_max",
        "chronic_cap_max",
        "effective_days_ahead_max",
        "visit_total_max",
        "payment_max",
        "external_fund_payment_max",
    }
    # the recorded text settles as the file did
    again = parse_parameters(text)
    cert = b.chronic_certified("NX-R", NX, "E11", "20000.01")
    out = b.settle(b.enrolled("NX-R", NX, on="2023-06-01"), cert, parameters=again)
    refused(out, cert, "chronic_cap_bound", "limits.chronic_cap_max")


@pytest.mark.parametrize("name", ["contribution_base_max", "effective_days_ahead_max"])
def test_a_bound_of_the_wrong_type_is_a_parameter_error(name):
    from policies.parameters import ParameterError
    from policies.registry import PolicyRegistry

    value = "true" if name == "effective_days_ahead_max" else "[1]"
    with pytest.raises(ParameterError, match=f"limits.{name}"):
        PolicyRegistry(parse_parameters(f'[policy."320100-2023".limits]\n{name} = {value}\n'))


def test_a_payment_of_nothing_is_refused_and_a_credit_of_nothing_is_no_movement():
    """A movement's amount is positive: a payment of 0.00 and a retiree credit of 0.00 stopped the run."""
    nothing = b.payment("NJ-Z", NJ, "0.00", on="2023-03-01")
    credit = b.pension("NJ-Z0", NJ, "2023-03", "4000.00")
    out = b.settle(
        b.enrolled("NJ-Z", NJ),
        b.contribution("NJ-Z", NJ, "2023-02", "9000.00"),
        nothing,
        b.enrolled("NJ-Z0", NJ, person_type="retired", legacy_monthly_credit="0.00"),
        credit,
    )
    refused(out, nothing, "payment_bound")
    assert b.rejected(out, credit) is None and not b.caused_by(out, credit)
    assert balance(out, "NJ-Z") == Decimal("180.00")


def test_every_rule_and_parameter_is_documented():
    import dataclasses
    from pathlib import Path

    from policies.limits import RULES, Limits

    document = (Path(__file__).parents[2] / "docs/policies-limits.md").read_text(encoding="utf-8")
    for rule, parameters in RULES.items():
        assert f"`{rule}`" in document, rule
        assert all(f"`limits.{name}`" in document for name in parameters), rule
    named = {name for parameters in RULES.values() for name in parameters}
    assert named == {field.name for field in dataclasses.fields(Limits)}
