"""Settling a visit and reversing one: the steps every region shares around its own rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from . import ids, limits
from .accounts import book_movement, family_grant, movement
from .book import Book
from .explanations import explain_once, writer
from .guards import active_member, member_on
from .member import MemberState, Status
from .money import ZERO, ratio4
from .outputs import VISIT_AMOUNTS, Movement, Settlement
from .registry import REGION_NAMES, REGIONS
from .rejection import Rejected
from .rules import Policy
from .visit import Bill, Facility, FundDecision, VisitContext, bill_of, rated_facility

PSN_TYPES = {
    "in_service": "1101",
    "flexible": "1103",
    "retired": "1201",
    "veteran_pre1949": "1201",
    "resident_tier1": "1501",
    "resident_tier2": "1501",
    "resident_minor": "1405",
}


_NOT_CERTIFIED = writer("chronic.not_certified")
_PRESCRIPTION = writer("pharmacy.prescription")
_EXCLUDED = writer("bill.excluded")
_FAMILY_PAID_FROM = writer("family.paid_from")
_ACCOUNT_PAYS = writer("account.pays")
_VISIT_PAYMENT = writer("account.visit_payment")
_EXCLUSION_NOT_DESIGNATED = writer("exclusion.not_designated")
_EXCLUSION_INPATIENT = writer("exclusion.inpatient")
_EXCLUSION_PHARMACY_WITHOUT_PRESCRIPTION = writer("exclusion.pharmacy_without_prescription")
_ACCOUNT_NOT_DESIGNATED = writer("account.not_designated")
_ACCOUNT_CLOSED = writer("account.closed")
_REVERSAL_OF = writer("reversal.of")
_REVERSAL_EXACT = writer("reversal.exact")
_REVERSAL_ACCOUNT_CLOSED = writer("reversal.account_closed")
_REVERSAL_REFUND = writer("reversal.refund")


def _payable_at(visit: Any, facility: Facility | None) -> Facility | str:
    """The facility the fund pays the visit at, or the line saying why it pays nothing."""
    if not visit.designated:
        return _EXCLUSION_NOT_DESIGNATED()
    if visit.inpatient_period:
        return _EXCLUSION_INPATIENT()
    if facility is None:
        return _EXCLUSION_PHARMACY_WITHOUT_PRESCRIPTION()
    return facility


def settle_visit(book: Book, event: Any, seq: int) -> list:
    day = event.business_date
    member = member_on(book, event, day)
    policy = book.policies.on(event.region, day)
    bill = bill_of(event.items)
    limits.visit_total(bill.total, policy)
    if (event.region, day.year) in book.closed_years:
        raise Rejected(
            "year_closed", f"{REGION_NAMES[event.region]} {day.year} is closed; the visit of {day} cannot settle"
        )
    if (event.region, event.visit_id) in book.visits:
        raise Rejected("duplicate_visit", f"visit_id {event.visit_id} is already settled in region {event.region}")
    status = member.status_on(day)
    if status.insurance_type not in policy.rules.INSURANCE_TYPES:
        raise Rejected(
            "policy_not_configured",
            f"{policy.policy_id} covers {status.insurance_type} insurance for no outpatient benefit",
        )
    screen = policy.rules.screen_visit
    if screen is not None:
        screen(event, policy.params)
    settlement, payer = decide(book, policy, member, event, seq, day, status, bill)
    records: list[Movement] = []
    if settlement.account_paid:
        assert payer is not None  # an account payment has its payer (decide)
        purpose = "visit_payment" if payer is member else "family_visit_payment"
        beneficiary = None if payer is member else member.member_id
        records.append(
            book_movement(
                payer,
                movement(
                    payer,
                    event,
                    0,
                    "debit",
                    purpose,
                    settlement.account_paid,
                    policy.policy_id,
                    [_VISIT_PAYMENT(article=policy.rules.ACCOUNT_ARTICLE, visit_id=event.visit_id)],
                    beneficiary,
                ),
            )
        )
    member.move(settlement.deltas)
    book.visits[(event.region, event.visit_id)] = settlement
    return [settlement, *records]


_MEMBER_LINE = ("policy_id", "document", "insurance_type", "person_type")


def decide(
    book: Book, policy: Policy, member: MemberState, event: Any, seq: int, day: date, status: Status, bill: Bill
) -> tuple[Settlement, MemberState | None]:
    """The settlement of `event` against `member` on `day` with `status`, as things stand, `bill` being its items
    summed up; nothing is changed."""
    retired = status.person_type == "retired"
    facility = rated_facility(event)
    lines = [
        explain_once(
            "member.retired_since" if retired and member.retired_on else "member",
            policy.policy_id,
            policy.rules.DOCUMENT,
            status.insurance_type,
            status.person_type.replace("_", " "),
            names=_MEMBER_LINE,
        )
    ]
    certification = None
    if event.visit_kind == "chronic":
        certification = member.certification_on(event.disease_code, day)
        if certification is None:
            lines.append(_NOT_CERTIFIED(disease_code=event.disease_code, day=day))
    if facility is not None and facility.pharmacy:
        lines.append(_PRESCRIPTION(facility=facility.describe()))
    if bill.excluded:
        lines.append(_EXCLUDED(amount=bill.excluded))
    payable = _payable_at(event, facility)
    employee = status.insurance_type == "employee"
    if isinstance(payable, str):
        decision = FundDecision(pool="chronic" if certification else "general").no_fund(payable)
    else:
        ctx = VisitContext(
            member,
            event,
            day,
            bill,
            payable,
            status,
            retired,
            certification,
            policy.params,
            book.closed_years,
            day.year,
            employee,
            event.out_of_area,
        )
        decision = policy.rules.settle(ctx)
    lines += decision.lines
    fund = decision.fund
    copay = bill.eligible - decision.deductible - fund - decision.over_limit
    member_share = bill.total - fund
    payer, account_paid = _account_payment(book, member, event, member_share, lines)
    chronic, pharmacy = decision.pool == "chronic", event.facility_kind == "retail_pharmacy"
    # Positional, in the order of Settlement's fields (each named beside its value): keywords cost a dataclass
    # of this width several times the call.
    settlement = Settlement(
        ids.settlement_id(event.region, event.event_id),  # settlement_id
        event.event_id,  # event_id
        seq,  # ledger_seq
        event.visit_id,  # visit_id
        member.member_id,  # member_id
        member.region,  # region
        day,  # visit_date
        facility.level if facility is not None else None,  # facility_level
        policy.policy_id,  # policy_id
        "310" if employee else "390",  # insutype
        PSN_TYPES[status.person_type],  # psn_type
        "14" if chronic else ("41" if pharmacy else "11"),  # med_type
        "310100" if employee else "390100",  # fund_pay_type
        bill.total,  # total_amount
        bill.out_of_catalog,  # out_of_catalog_amount
        bill.pre_self_pay,  # pre_self_pay_amount
        bill.eligible,  # in_policy_amount
        decision.deductible,  # deductible_paid
        fund,  # fund_paid
        decision.pool,  # fund_pool
        ratio4(decision.ratio if fund else ZERO),  # fund_ratio
        copay,  # copay_amount
        decision.over_limit,  # over_limit_amount
        member_share,  # member_share
        account_paid,  # account_paid
        account_paid if payer is not None and payer is not member else ZERO,  # family_account_paid
        member_share - account_paid,  # cash_paid
        payer.balance - account_paid if payer is not None else None,  # account_balance_after
        decision.limit_remaining,  # limit_remaining
        payer.member_id if payer is not None else None,  # payer_id
        tuple(lines),  # explanation
        tuple(decision.deltas),  # deltas
    )
    return settlement, payer


def _account_payment(
    book: Book, member: MemberState, event: Any, share: Decimal, lines: list[str]
) -> tuple[MemberState | None, Decimal]:
    if not event.pay_with_account:
        return None, ZERO
    payer_id = event.account_payer_id or member.member_id
    payer = member
    rules = REGIONS[event.region]
    if payer_id != member.member_id:
        family = book.member(event.region, payer_id)
        if family is None:
            raise Rejected(
                "family_not_authorized", f"account payer {payer_id} is not enrolled in region {event.region}"
            )
        payer = family
        relation = family_grant(payer, member.member_id)
        lines.append(_FAMILY_PAID_FROM(article=rules.FAMILY_ARTICLE, payer_id=payer_id, relation=relation))
    if not event.designated:
        lines.append(_ACCOUNT_NOT_DESIGNATED(article=rules.ACCOUNT_ARTICLE))
        return payer, ZERO
    if payer.account_closed:
        lines.append(_ACCOUNT_CLOSED(payer_id=payer_id))
        return payer, ZERO
    balance = payer.balance
    paid = share if share < balance else balance  # min(balance, share)
    lines.append(_ACCOUNT_PAYS(article=rules.ACCOUNT_ARTICLE, paid=paid, share=share, balance=balance))
    return payer, paid


def reverse_visit(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    key = (event.region, event.visit_id)
    original = book.visits.get(key)
    if original is None or original.member_id != member.member_id:
        raise Rejected("unknown_visit", f"no settled visit {event.visit_id} for member {event.member_id}")
    if key in book.reversed_visits:
        raise Rejected("already_reversed", f"visit {event.visit_id} was already reversed")
    if (event.region, original.visit_date.year) in book.closed_years:
        raise Rejected("year_closed", f"the visit's year {original.visit_date.year} is closed; it cannot be reversed")
    payer = book.member(event.region, original.payer_id) if original.payer_id else None
    refund = original.account_paid
    lines = [
        _REVERSAL_OF(settlement_id=original.settlement_id, reason=event.reason),
        _REVERSAL_EXACT(),
    ]
    if refund and payer is not None and payer.account_closed:
        lines.append(_REVERSAL_ACCOUNT_CLOSED(payer_id=payer.member_id))
        refund = ZERO
    negated = {name: -getattr(original, name) for name in VISIT_AMOUNTS}
    reversal = replace(
        original,
        settlement_id=ids.settlement_id(event.region, event.event_id),
        event_id=event.event_id,
        ledger_seq=seq,
        account_paid=-refund,
        family_account_paid=-refund if original.family_account_paid else ZERO,
        cash_paid=-original.member_share + refund,
        account_balance_after=payer.balance + refund if payer is not None else None,
        limit_remaining=None,
        explanation=tuple(lines),
        deltas=tuple((period, name, -amount) for period, name, amount in original.deltas),
        reverses=original.settlement_id,
        **negated,
    )
    records: list[Settlement | Movement] = [reversal]
    if refund:
        assert payer is not None  # a refund goes back to the account that paid
        purpose = "visit_payment" if payer is member else "family_visit_payment"
        beneficiary = None if payer is member else member.member_id
        records.append(
            book_movement(
                payer,
                movement(
                    payer,
                    event,
                    0,
                    "credit",
                    purpose,
                    refund,
                    original.policy_id,
                    [_REVERSAL_REFUND(visit_id=event.visit_id)],
                    beneficiary,
                ),
            )
        )
    member.move(reversal.deltas)
    book.reversed_visits.add(key)
    return records
