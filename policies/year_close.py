"""period.year_closed: the incentive evaluation for every member of the region (Nanjing 002 第七条,
Weihai 001 第十二条), after which visits of that year are refused."""

from __future__ import annotations

from datetime import date

from .accounts import book_movement, credits_to_movements
from .book import Book
from .outputs import IncentiveEvaluation
from .registry import REGION_NAMES
from .rejection import Rejected


def close_year(book: Book, event, seq: int) -> list:
    region, year = event.region, event.year
    if (region, year) in book.closed_years:
        raise Rejected("year_closed", f"{REGION_NAMES[region]} {year} is already closed")
    policy = book.policies.for_year(region, year)
    outputs = []
    if policy is not None:
        for member in book.region_members(region):
            if member.enrolled_on > date(year, 12, 31) or (
                member.terminated_on is not None and member.terminated_on < date(year, 1, 1)
            ):
                continue
            result = policy.rules.close_year(member, year, policy.params)
            if result is None:
                break  # the region has no incentive
            outputs.append(
                IncentiveEvaluation(
                    result.incentive, event.event_id, member.member_id, region, year, result.before, result.after,
                    policy.policy_id, result.lines,
                )
            )
            policy.rules.apply_year_close(member, result)
            if result.credit is not None and not member.account_closed:
                (record,) = credits_to_movements(member, event, [result.credit], policy.policy_id)
                outputs.append(book_movement(member, record))
    book.closed_years.add((region, year))
    return outputs

