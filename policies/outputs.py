"""What the policies decide: settlements, account movements and incentive evaluations, as plain records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

Delta = tuple[str, str, Decimal]  # (period key, counter name, amount)

# A settlement's amounts, in record order: what the visit cost and how it splits (a reversal negates them all),
# then how the member's share was paid, then the balances and limits after it.
VISIT_AMOUNTS = (
    "total_amount",
    "out_of_catalog_amount",
    "pre_self_pay_amount",
    "in_policy_amount",
    "deductible_paid",
    "fund_paid",
    "copay_amount",
    "over_limit_amount",
    "member_share",
)
PAYMENT_AMOUNTS = ("account_paid", "family_account_paid", "cash_paid")
AFTER_AMOUNTS = ("account_balance_after", "limit_remaining")  # None where they do not apply


@dataclass(slots=True)
class Settlement:
    """Not frozen: a frozen dataclass of this width costs more to build than the policy work behind it.
    Treat it as immutable all the same; a reversal is a new record (`dataclasses.replace`)."""

    settlement_id: str
    event_id: str
    ledger_seq: int
    visit_id: str
    member_id: str
    region: str
    visit_date: date
    facility_level: int | None  # the level the visit was rated at (the prescriber's for a pharmacy purchase)
    policy_id: str
    insutype: str
    psn_type: str
    med_type: str
    fund_pay_type: str
    total_amount: Decimal
    out_of_catalog_amount: Decimal
    pre_self_pay_amount: Decimal
    in_policy_amount: Decimal
    deductible_paid: Decimal
    fund_paid: Decimal
    fund_pool: str
    fund_ratio: Decimal
    copay_amount: Decimal
    over_limit_amount: Decimal
    member_share: Decimal
    account_paid: Decimal
    family_account_paid: Decimal
    cash_paid: Decimal
    account_balance_after: Decimal | None
    limit_remaining: Decimal | None
    payer_id: str | None
    explanation: tuple[str, ...]
    deltas: tuple[Delta, ...]
    reverses: str | None = None


@dataclass(slots=True)
class Movement:
    """Not frozen, as `Settlement` is not: a frozen dataclass sets each field through object.__setattr__, which
    made a movement cost ten times what it costs now (about 2.5 µs against 0.2). Treat it as immutable all the
    same; a movement is never changed once made."""

    movement_id: str
    event_id: str
    member_id: str
    region: str
    kind: str  # credit, debit, payout
    purpose: str
    amount: Decimal
    balance_after: Decimal
    beneficiary_id: str | None
    policy_id: str
    explanation: tuple[str, ...]
    booked_on: date  # the business date of the event that caused it


@dataclass(frozen=True, slots=True)
class IncentiveEvaluation:
    incentive: str  # weihai_ratio_bonus, nanjing_health_streak
    event_id: str
    member_id: str
    region: str
    year: int
    before: Decimal | int
    after: Decimal | int
    policy_id: str
    explanation: tuple[str, ...]
