"""Dates as the policies read them: business dates in Asia/Shanghai and the 次月起 (from the next month) rule."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def business_date(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def from_next_month(event_day: date, on: date) -> bool:
    """True when `on` falls in a calendar month after the one containing `event_day` (policy notes §0, 次月起)."""
    return month_index(on) > month_index(event_day)


def first_of_next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def age_bracket_reached(birth_date: date, years: int, on: date) -> bool:
    """A member counts as `years` old on `on` once the birthday month of that age is over (次月起)."""
    return month_index(on) > (birth_date.year + years) * 12 + birth_date.month - 1


def age_on(birth_date: date, on: date) -> int:
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
