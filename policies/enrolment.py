"""Enrolment, status changes, chronic certifications and family authorisations."""

from __future__ import annotations

from bisect import insort
from datetime import date
from typing import Any

from . import limits
from .accounts import close_account
from .book import Book
from .guards import active_member
from .member import Certification, MemberState, Status, retirement_status
from .registry import REGIONS
from .rejection import Rejected
from .rules import Policy

RESIDENT_TYPES = frozenset({"resident_tier1", "resident_tier2", "resident_minor"})


def _check_types(insurance_type: str, person_type: str) -> None:
    if (insurance_type == "resident") != (person_type in RESIDENT_TYPES):
        raise Rejected("invalid_event", f"person_type {person_type} does not belong to {insurance_type} insurance")


def enrol(book: Book, event: Any, seq: int) -> list:
    existing = book.member(event.region, event.member_id)
    if existing is not None and existing.terminated_on is None:
        raise Rejected("already_enrolled", f"member {event.member_id} is already enrolled in region {event.region}")
    _check_types(event.insurance_type, event.person_type)
    limits.enrolment(event, _bounding(book, event))
    status = Status(event.effective_date, event.insurance_type, event.person_type)
    member = MemberState(
        region=event.region,
        member_id=event.member_id,
        birth_date=event.birth_date,
        enrolled_on=event.effective_date,
        statuses=[status],
        contribution_base=event.contribution_base,
        monthly_pension=event.monthly_pension,
        legacy_monthly_credit=event.legacy_monthly_credit,
        designated_facilities=frozenset(event.designated_facilities or ()),
        remote_pilot=bool(event.remote_pilot),
    )
    if existing is not None and existing.terminated_on is not None:  # enrolled again after a termination
        _carry_over(existing, existing.terminated_on, member)
    book.members[(event.region, event.member_id)] = member
    return []


def _bounding(book: Book, event: Any) -> Policy:
    """The version whose limits bound a member event: the one in force on its effective date, or its nearest."""
    return book.policies.nearest(event.region, event.effective_date)


def _carry_over(previous: MemberState, ended: date, member: MemberState) -> None:
    """Re-enrolment in the same region: the year's accumulators and limits are the person's, not the
    enrolment's (policy notes §0: they reset on 1 January only), and so is the incentive history. The account
    was paid out on termination and starts again from zero; certifications and family grants start afresh."""
    member.earlier_periods = [*previous.earlier_periods, (previous.enrolled_on, ended)]
    before = previous.statuses[-1]
    member.statuses = [s for s in previous.statuses if s.since < member.enrolled_on] + member.statuses
    member.counters = previous.counters
    member.segment_starts = previous.segment_starts
    member.bonus_points = previous.bonus_points
    member.health_streak = previous.health_streak
    member.incentives = previous.incentives
    member.year_balances = previous.year_balances
    member.contributions = previous.contributions  # a month's contribution is posted once, whatever the enrolment
    member.retired_on = previous.retired_on
    member.retirement_pension = previous.retirement_pension
    _maybe_restart(member, before, member.statuses[-1])


def _maybe_restart(member: MemberState, before: Status, after: Status) -> None:
    """Weihai restarts the general deductible and limit when the insurance type changes in the year
    (001 第十一条), whether by a change event or by a re-enrolment under the other type."""
    restarts = REGIONS[member.region].restarts_counters
    if restarts is not None and restarts(before, after):
        insort(member.segment_starts, after.since)


def _add_status(member: MemberState, status: Status) -> None:
    member.statuses = [s for s in member.statuses if s.since != status.since]
    insort(member.statuses, status, key=lambda s: s.since)


def retire(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    if member.retired_on is not None or member.status_on(event.effective_date).person_type == "retired":
        raise Rejected("invalid_event", f"member {member.member_id} is already retired")
    if member.status_on(event.effective_date).insurance_type != "employee":
        raise Rejected("invalid_event", "only employee members retire under the employee scheme")
    limits.pension(event.monthly_pension, _bounding(book, event))
    member.retired_on = event.effective_date
    member.retirement_pension = event.monthly_pension
    member.monthly_pension = event.monthly_pension
    _add_status(member, retirement_status(member, event.effective_date))
    return []


def change_insurance_type(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    _check_types(event.insurance_type, event.person_type)
    before = member.status_on(event.effective_date)
    after = Status(event.effective_date, event.insurance_type, event.person_type)
    _add_status(member, after)
    _maybe_restart(member, before, after)
    return []


def interrupt_contribution(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    hook = REGIONS[event.region].on_interruption
    if hook is not None:
        member.move(hook(member, event.effective_date))
    return []


def resume_contribution(book: Book, event: Any, seq: int) -> list:
    active_member(book, event)
    return []


def terminate(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    policy_id = _policy_id_near(book, event)
    records = close_account(member, event, event.reason, policy_id)
    member.terminated_on = event.effective_date
    member.termination_reason = event.reason
    return records


def _policy_id_near(book: Book, event: Any) -> str:
    """The policy in force on the termination date, or the region's first one before any was in force."""
    try:
        return book.policies.on(event.region, event.effective_date).policy_id
    except Rejected:
        policy = book.policies.for_year(event.region, event.effective_date.year)
        return policy.policy_id if policy else f"{event.region}-none"


def _certifiable(book: Book, event: Any) -> MemberState:
    """000 第十七条, 第二十条, 001 第十六条: a disease's cap no more than the region's bound (policies.limits)."""
    member = active_member(book, event)
    limits.chronic_cap(event.annual_cap, _bounding(book, event))
    return member


def certify_chronic(book: Book, event: Any, seq: int) -> list:
    member = _certifiable(book, event)
    step = Certification(event.effective_date, event.disease_code, event.annual_cap, event.kind)
    insort(member.certifications.setdefault(event.disease_code, []), step, key=lambda s: s.since)
    return []


def adjust_chronic_cap(book: Book, event: Any, seq: int) -> list:
    """000 第二十条: a new cap from the effective date on; what was used stays used."""
    member = _certifiable(book, event)
    current = member.certification_on(event.disease_code, event.effective_date)
    if current is None:
        raise Rejected("not_certified", f"member {member.member_id} is not certified for {event.disease_code}")
    step = Certification(event.effective_date, event.disease_code, event.annual_cap, current.kind)
    insort(member.certifications[event.disease_code], step, key=lambda s: s.since)
    return []


def revoke_chronic(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    if member.certification_on(event.disease_code, event.effective_date) is None:
        raise Rejected("not_certified", f"member {member.member_id} is not certified for {event.disease_code}")
    step = Certification(event.effective_date, event.disease_code, None, None)
    insort(member.certifications[event.disease_code], step, key=lambda s: s.since)
    return []


def authorize_family(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    allowed = REGIONS[event.region].FAMILY_RELATIONS
    if event.relation not in allowed:
        raise Rejected(
            "family_not_authorized",
            f"relation {event.relation} is not family for mutual aid in region {event.region} "
            f"(allowed: {', '.join(sorted(allowed))}; 000 第七条 alone adds the spouse's parents)",
        )
    if event.beneficiary_id == member.member_id:
        raise Rejected("invalid_event", "beneficiary_id: a member cannot authorise themselves")
    member.family_grants[event.beneficiary_id] = event.relation
    return []


def revoke_family(book: Book, event: Any, seq: int) -> list:
    member = active_member(book, event)
    if member.family_grants.pop(event.beneficiary_id, None) is None:
        raise Rejected("family_not_authorized", f"no authorisation for {event.beneficiary_id} to revoke")
    return []
