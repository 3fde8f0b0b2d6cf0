"""Plausibility limits: what an event may say before any rule settles it.

The seeds price what members are owed; they do not say how large a contribution base, a pension, a chronic cap or
a visit can be, because a real producer never sends absurd figures. An event arriving on the topic is untrusted, so
every figure that becomes money (or a limit that lets money out) is bounded here, by a parameter of the policy
version, recorded with the rest (`policies.recorded`): a replay refuses what was refused on its day.

Each refusal has the reason `implausible` and names the rule and the parameter, as `RULES` lists them
(docs/policies-limits.md says where each bound comes from). Where the seeds are silent the defaults are operator
parameters, illustrative and wide: a deployment sets the figures its province publishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .money import fen, pct
from .rejection import Rejected
from .rules import Policy

# rule -> the parameters it reads (the year-close and birth-date rules need none: the calendar decides).
RULES = {
    "contribution_base_bounds": ("contribution_base_min", "contribution_base_max"),
    "contribution_individual_amount": (),  # the region's individual rate, named by INDIVIDUAL_RATE
    "pension_bounds": ("monthly_pension_min", "monthly_pension_max"),
    "legacy_monthly_credit_bound": ("legacy_monthly_credit_max",),
    "chronic_cap_bound": ("chronic_cap_max",),
    "effective_date_ahead": ("effective_days_ahead_max",),
    "birth_date_ahead": (),
    "year_close_date": (),
    "visit_total_bound": ("visit_total_max",),
    "payment_bound": ("payment_max",),
    "external_fund_payment_bound": ("external_fund_payment_max",),
}


@dataclass(frozen=True)
class Limits:
    """One policy version's plausibility bounds (`[policy."ID".limits]` in a parameter file)."""

    # [param] The seeds name the base (000 第六条 本人当月实际缴费基数, 001 第二十三条, 002 第五条, 004 二) but not its
    # bounds, which the province publishes yearly (60% and 300% of the average wage); the defaults only keep out
    # absurd figures.
    contribution_base_min: Decimal = Decimal("1000.00")
    contribution_base_max: Decimal = Decimal("60000.00")
    # [param] The pension drives Nanjing's retiree credits (002 第五条: 5.4%, from 2024 2.5% of the pension).
    monthly_pension_min: Decimal = Decimal("0.00")
    monthly_pension_max: Decimal = Decimal("50000.00")
    # [param] 002 第五条: the December-2022 monthly amount, credited every month to retirees and veterans.
    legacy_monthly_credit_max: Decimal = Decimal("1000.00")
    # [param] 000 第十七条 (限额按病种分别确定) and 第二十条 (adjusted on review), 001 第十六条: caps come per disease
    # from tables outside the seeds.
    chronic_cap_max: Decimal = Decimal("100000.00")
    # [param] How far after the event's occurred_at an enrolment's effective_date may lie (an enrolment notified
    # ahead of the date it takes effect).
    effective_days_ahead_max: int = 92
    # [param] Per-event maxima: an outpatient visit's total, an account payment, an external fund payment.
    visit_total_max: Decimal = Decimal("500000.00")
    payment_max: Decimal = Decimal("100000.00")
    external_fund_payment_max: Decimal = Decimal("2000000.00")


def implausible(rule: str, what: str, policy: Policy, parameter: str | None = None) -> Rejected:
    where = f"; parameter {policy.policy_id} {parameter}" if parameter else ""
    return Rejected("implausible", f"rule {rule}: {what}{where} (docs/policies-limits.md)")


def _within(rule: str, field: str, value: Decimal, low: str | None, high: str, policy: Policy) -> None:
    limits = policy.params.limits
    if low is not None and value < getattr(limits, low):
        raise implausible(rule, f"{field} {value} is below {getattr(limits, low)}", policy, f"limits.{low}")
    if value > getattr(limits, high):
        raise implausible(rule, f"{field} {value} is above {getattr(limits, high)}", policy, f"limits.{high}")


def contribution_base(value: Decimal, policy: Policy) -> None:
    _within(
        "contribution_base_bounds",
        "contribution_base",
        value,
        "contribution_base_min",
        "contribution_base_max",
        policy,
    )


def contribution(event: Any, person_type: str, policy: Policy) -> None:
    """The base within bounds; the individual part equals base × the version's individual rate, to the fen
    (000 第六条, 001 第二十三条, 002 第五条, 004 二: 个人按缴费基数的2%缴纳). A flexible worker pays the whole
    contribution himself (000 第六条 其余…计入统筹基金, 001 第二十五条), so his individual part is at least that."""
    contribution_base(event.contribution_base, policy)
    rules = policy.rules
    rate = getattr(policy.params, rules.INDIVIDUAL_RATE)
    due = fen(event.contribution_base * rate)
    if person_type == "in_service" and event.individual_amount != due:
        raise implausible(
            "contribution_individual_amount",
            f"individual_amount {event.individual_amount} is not {pct(rate)} of the base {event.contribution_base}"
            f" = {due}",
            policy,
            _rate_parameter(rules),
        )
    if person_type == "flexible" and event.individual_amount < due:
        raise implausible(
            "contribution_individual_amount",
            f"a flexible worker's individual_amount {event.individual_amount} is less than {pct(rate)} of the "
            f"base {event.contribution_base} = {due}",
            policy,
            _rate_parameter(rules),
        )


def _rate_parameter(rules: Any) -> str:
    """The parameter a refused individual part names; written only for a refusal."""
    return f"{rules.INDIVIDUAL_RATE} ({rules.CONTRIBUTION_ARTICLE})"


def pension(value: Decimal, policy: Policy) -> None:
    _within("pension_bounds", "monthly_pension", value, "monthly_pension_min", "monthly_pension_max", policy)


def legacy_monthly_credit(value: Decimal, policy: Policy) -> None:
    _within("legacy_monthly_credit_bound", "legacy_monthly_credit", value, None, "legacy_monthly_credit_max", policy)


def chronic_cap(value: Decimal, policy: Policy) -> None:
    _within("chronic_cap_bound", "annual_cap", value, None, "chronic_cap_max", policy)


def visit_total(value: Decimal, policy: Policy) -> None:
    _within("visit_total_bound", "the visit's total amount", value, None, "visit_total_max", policy)


def payment(value: Decimal, policy: Policy) -> None:
    """A payment of 0.00 asks for nothing and would book a movement of nothing: refused with the maximum's rule."""
    if not value:
        raise implausible("payment_bound", "amount 0.00: a payment must be of a positive amount", policy)
    _within("payment_bound", "amount", value, None, "payment_max", policy)


def external_fund_payment(value: Decimal, policy: Policy) -> None:
    _within("external_fund_payment_bound", "amount", value, None, "external_fund_payment_max", policy)


def effective_date(event: Any, policy: Policy) -> None:
    """An enrolment takes effect no later than `effective_days_ahead_max` days after it occurred."""
    ahead = policy.params.limits.effective_days_ahead_max
    latest = event.business_date + timedelta(days=ahead)
    if event.effective_date > latest:
        raise implausible(
            "effective_date_ahead",
            f"effective_date {event.effective_date} is more than {ahead} days after the event's date "
            f"{event.business_date}",
            policy,
            "limits.effective_days_ahead_max",
        )


def enrolment(event: Any, policy: Policy) -> None:
    """An enrolment's dates and the figures it carries for later credits."""
    if event.birth_date > event.business_date:
        raise implausible(
            "birth_date_ahead", f"birth_date {event.birth_date} is after the event's date {event.business_date}", policy
        )
    effective_date(event, policy)
    if event.contribution_base is not None:
        contribution_base(event.contribution_base, policy)
    if event.monthly_pension is not None:
        pension(event.monthly_pension, policy)
    if event.legacy_monthly_credit is not None:
        legacy_monthly_credit(event.legacy_monthly_credit, policy)


def year_close(event: Any, policy: Policy | None) -> None:
    """policy notes §0: a year close evaluates a whole year, so only a year that has ended can close, dated on or
    after its last day (closing early would credit incentives not yet earned and refuse the year's later visits)."""
    last = date(event.year, 12, 31)
    if event.business_date < last:
        where = f" ({policy.policy_id})" if policy is not None else ""
        raise Rejected(
            "implausible",
            f"rule year_close_date: year {event.year} ends on {last}; a close dated {event.business_date} is before"
            f" its last day{where} (docs/policies-limits.md)",
        )
