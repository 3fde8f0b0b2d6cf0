"""period.year_closed: the incentive evaluation for every member of the region (Nanjing 002 第七条,
Weihai 001 第十二条), after which visits of that year are refused.

The durable ledger evaluates a region's members in chunks, so the steps are exposed one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import limits
from .accounts import book_movement, credits_to_movements
from .book import Book
from .member import MemberState
from .outputs import IncentiveEvaluation, Movement
from .registry import REGION_NAMES
from .rejection import Rejected
from .rules import Policy


def open_close(book: Book, event: Any) -> Policy | None:
    """The policy whose incentives the close evaluates, or None when the region has none that year."""
    limits.year_close(event, book.policies.for_year(event.region, event.year))
    if (event.region, event.year) in book.closed_years:
        raise Rejected("year_closed", f"{REGION_NAMES[event.region]} {event.year} is already closed")
    policy = book.policies.for_year(event.region, event.year)
    if policy is None or policy.rules.close_year is None or policy.rules.apply_year_close is None:
        return None
    return policy


def evaluate(policy: Policy, event: Any, members: Iterable[MemberState]) -> list:
    year = event.year
    outputs: list[IncentiveEvaluation | Movement] = []
    close, apply = policy.rules.close_year, policy.rules.apply_year_close
    if close is None or apply is None:  # a region without incentives (open_close gives no policy for it)
        return outputs
    for member in members:
        if not member.enrolled_during(year):
            continue
        result = close(member, year, policy.params)
        outputs.append(
            IncentiveEvaluation(
                result.incentive,
                event.event_id,
                member.member_id,
                event.region,
                year,
                result.before,
                result.after,
                policy.policy_id,
                result.lines,
            )
        )
        apply(member, result)
        member.incentives[str(year)] = str(result.after)
        if result.credit is not None and not member.account_closed:
            for record in credits_to_movements(member, event, [result.credit], policy.policy_id):
                outputs.append(book_movement(member, record))
    return outputs


def finish_close(book: Book, event: Any) -> None:
    book.closed_years.add((event.region, event.year))


def close_year(book: Book, event: Any, seq: int) -> list:
    policy = open_close(book, event)
    outputs = evaluate(policy, event, book.region_members(event.region)) if policy is not None else []
    finish_close(book, event)
    return outputs
