"""Dates as the policies read them: the 次月起 (from the next month) rule."""

from datetime import date


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def first_of_next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def age_bracket_reached(birth_date: date, years: int, on: date) -> bool:
    """A member counts as `years` old on `on` once the birthday month of that age is over (次月起)."""
    return month_index(on) > (birth_date.year + years) * 12 + birth_date.month - 1
