"""Checks every member event passes before a policy looks at it."""

from __future__ import annotations

from datetime import date
from typing import Any

from .book import Book
from .member import MemberState
from .rejection import Rejected


def known_member(book: Book, event: Any) -> MemberState:
    member = book.member(event.region, event.member_id)
    if member is None:
        raise Rejected("member_not_enrolled", f"member {event.member_id} is not enrolled in region {event.region}")
    return member


def _terminated(member: MemberState) -> Rejected:
    return Rejected(
        "member_terminated",
        f"member {member.member_id} was terminated ({member.termination_reason}) on {member.terminated_on}",
    )


def active_member(book: Book, event: Any, day: date | None = None) -> MemberState:
    """A known member who is not terminated: after a termination every account or enrolment event is refused."""
    member = known_member(book, event)
    if member.terminated_on is not None:
        raise _terminated(member)
    return member


def member_on(book: Book, event: Any, day: date) -> MemberState:
    """A member covered on `day`: within one of their enrolments in the region (policy notes §0). Every visit
    asks: the member found covered is the path taken first, the refusals after it."""
    member = book.members.get((event.region, event.member_id))
    if member is not None and member.covered_on(day):
        return member
    member = known_member(book, event)
    if member.terminated_on is not None and day >= member.terminated_on:
        raise _terminated(member)
    raise Rejected("member_not_enrolled", f"member {member.member_id} is not enrolled on {day}")
