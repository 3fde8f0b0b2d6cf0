"""Personal accounts: credits, payments by purpose and region (policy notes §5), family mutual aid, closure."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from . import ids, limits
from .book import Book
from .counters import EXTERNAL_FUND
from .explanations import writer
from .guards import active_member
from .member import MemberState
from .money import ZERO
from .outputs import Movement
from .rejection import Rejected
from .rules import Credit

FAMILY_PURPOSES = frozenset({"family_medical", "family_resident_premium"})


_ACCOUNT_ALLOWED_USE = writer("account.allowed_use")
_FAMILY_AUTHORISED = writer("family.authorised")


def movement(
    member: MemberState,
    event: Any,
    index: int,
    kind: str,
    purpose: str,
    amount: Decimal,
    policy_id: str,
    lines: Sequence[str],
    beneficiary_id: str | None = None,
) -> Movement:
    """A movement computed against `member`'s balance; `book_movement` applies it."""
    after = member.balance - amount if kind in ("debit", "payout") else member.balance + amount
    if after < ZERO:
        raise Rejected("insufficient_balance", f"balance {member.balance} is less than {amount}")
    return Movement(
        ids.movement_id(member.region, event.event_id, member.member_id, index),
        event.event_id,
        member.member_id,
        member.region,
        kind,
        purpose,
        amount,
        after,
        beneficiary_id,
        policy_id,
        tuple(lines),
        event.business_date,
    )


def book_movement(member: MemberState, record: Movement) -> Movement:
    member.balance = record.balance_after
    member.year_balances[str(record.booked_on.year)] = record.balance_after
    return record


def credits_to_movements(
    member: MemberState, event: Any, credits: list[Credit], policy_id: str, first: int = 0
) -> list[Movement]:
    """The movements of `credits`; a credit of 0.00 (a pension of a few fen at 2.5%, a legacy amount of 0.00)
    moves nothing and is no movement (a movement's amount is positive)."""
    records, balance = [], member.balance
    for index, credit in enumerate(credits, start=first):
        if not credit.amount:
            continue
        balance += credit.amount
        records.append(
            Movement(
                ids.movement_id(member.region, event.event_id, member.member_id, index),
                event.event_id,
                member.member_id,
                member.region,
                "credit",
                credit.purpose,
                credit.amount,
                balance,
                None,
                policy_id,
                credit.lines,
                event.business_date,
            )
        )
    return records


def contribution_posted(book: Book, event: Any, seq: int) -> list:
    """A month's contribution credits the account once (policies.limits: one contribution per member and month)."""
    member = active_member(book, event, event.business_date)
    month = event.month_start
    policy = book.policies.on(event.region, month)
    limits.contribution(event, member.status_on(month).person_type, policy)
    if event.month in member.contributions:
        raise Rejected(
            "duplicate_contribution",
            f"member {member.member_id} already has the contribution of {event.month} (credited "
            f"{member.contributions[event.month]}); a correction is sent as account.contribution_corrected",
        )
    credits = policy.rules.contribution_credits(member, event, month, policy.params)
    if member.account_closed:
        member.contributions[event.month] = ZERO
        return []
    member.contribution_base = event.contribution_base
    member.contributions[event.month] = sum((credit.amount for credit in credits), ZERO)
    return _book_credits(member, event, credits, policy.policy_id)


def contribution_corrected(book: Book, event: Any, seq: int) -> list:
    """A posted month's contribution corrected: the account is credited (or debited) the difference between what
    the corrected contribution credits and what the month's contribution credited, under the same version."""
    member = active_member(book, event, event.business_date)
    month = event.month_start
    policy = book.policies.on(event.region, month)
    limits.contribution(event, member.status_on(month).person_type, policy)
    credited = member.contributions.get(event.month)
    if credited is None:
        raise Rejected(
            "unknown_contribution",
            f"member {member.member_id} has no contribution of {event.month} to correct; post it first",
        )
    credits = policy.rules.contribution_credits(member, event, month, policy.params)
    corrected = sum((credit.amount for credit in credits), ZERO)
    difference = corrected - credited
    records = []
    if difference and not member.account_closed:
        lines = [
            f"{policy.rules.CONTRIBUTION_ARTICLE}: correction of the {event.month} contribution ({event.reason}): "
            f"credited {credited}, corrected {corrected}",
            *(line for credit in credits for line in credit.lines),
        ]
        kind = "credit" if difference > 0 else "debit"
        records.append(
            movement(member, event, 0, kind, "contribution_correction", abs(difference), policy.policy_id, lines)
        )
    member.contributions[event.month] = corrected if not member.account_closed else credited
    member.contribution_base = event.contribution_base
    return [book_movement(member, record) for record in records]


def pension_paid(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event, event.business_date)
    month = event.month_start
    policy = book.policies.on(event.region, month)
    limits.pension(event.monthly_pension, policy)
    credits = policy.rules.pension_credits(member, event, month, policy.params)
    if member.account_closed:
        return []
    member.monthly_pension = event.monthly_pension
    return _book_credits(member, event, credits, policy.policy_id)


def _book_credits(member: MemberState, event: Any, credits: list[Credit], policy_id: str) -> list[Movement]:
    records = credits_to_movements(member, event, credits, policy_id)
    for record in records:
        book_movement(member, record)
    return records


def family_grant(payer: MemberState, beneficiary_id: str) -> str:
    relation = payer.family_grants.get(beneficiary_id)
    if relation is None:
        raise Rejected(
            "family_not_authorized",
            f"{payer.member_id} has not authorised family mutual aid (家庭共济) for {beneficiary_id}",
        )
    return relation


def payment_requested(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event, event.business_date)
    policy = book.policies.on(event.region, event.business_date)
    if event.purpose not in policy.rules.PURPOSES:
        raise Rejected(
            "purpose_not_allowed",
            f"purpose {event.purpose} is not an allowed use of the personal account in {policy.policy_id} "
            f"(policy notes §5)",
        )
    limits.payment(event.amount, policy)
    if (event.region, event.payment_id) in book.payments:
        raise Rejected("duplicate_payment", f"payment_id {event.payment_id} was already paid")
    beneficiary = event.beneficiary_id if event.beneficiary_id != member.member_id else None
    lines = [_ACCOUNT_ALLOWED_USE(purpose=event.purpose.replace("_", " "), policy_id=policy.policy_id)]
    if beneficiary is not None:
        relation = family_grant(member, beneficiary)
        lines.append(
            _FAMILY_AUTHORISED(article=policy.rules.FAMILY_ARTICLE, beneficiary=beneficiary, relation=relation)
        )
    if member.account_closed:
        raise Rejected("insufficient_balance", "the account is closed")
    record = movement(member, event, 0, "debit", event.purpose, event.amount, policy.policy_id, lines, beneficiary)
    book.payments.add((event.region, event.payment_id))
    return [book_movement(member, record)]


def external_fund_payment(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event, event.business_date)
    limits.external_fund_payment(event.amount, book.policies.nearest(event.region, event.business_date))
    member.move([(str(event.business_date.year), EXTERNAL_FUND, event.amount)])
    return []


def close_account(member: MemberState, event: Any, reason: str, policy_id: str) -> list[Movement]:
    """On death or emigration the balance is paid out once; on transfer out it leaves with the member."""
    records = []
    if member.balance > 0:
        article = (
            "002 第十一条, 000 第九条"
            if reason != "transfer_out"
            else "002 第十一条: the balance moves with the member"
        )
        records.append(
            book_movement(
                member,
                movement(
                    member,
                    event,
                    0,
                    "payout",
                    reason,
                    member.balance,
                    policy_id,
                    [f"{article}: account closed on {reason.replace('_', ' ')}, balance paid out once"],
                ),
            )
        )
    member.account_closed = True
    return records
