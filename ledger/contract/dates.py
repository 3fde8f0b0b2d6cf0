"""Calendar values on the wire: dates, months and the event timestamp.

Python's ``fromisoformat`` accepts far more than the contract allows (week dates, compact
forms, naive times), so the exact wire shape is checked with a regex first.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

from .native import register

POLICY_TZ = ZoneInfo("Asia/Shanghai")
"""Policy dates (which year, which month) are read on the Beijing calendar."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_LOCAL_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
_NAIVE = re.compile(_LOCAL_TIME)
_RFC3339 = re.compile(_LOCAL_TIME + r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise PydanticCustomError("date_type", "must be a date (YYYY-MM-DD), not a datetime")
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise PydanticCustomError("date_format", "must be a date string YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_value", "not a real calendar date") from None


def parse_occurred_at(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            # 3.11 fromisoformat wants upper-case T/Z; RFC 3339 allows either case.
            moment = datetime.fromisoformat(value.upper())
        except ValueError:
            raise PydanticCustomError("datetime_value", "not a real date and time (or offset out of range)") from None
    elif isinstance(value, str) and _NAIVE.fullmatch(value):
        raise PydanticCustomError("datetime_naive", "needs an explicit UTC offset, e.g. +08:00 or Z")
    else:
        raise PydanticCustomError(
            "datetime_format",
            "must be an RFC 3339 date-time with offset, e.g. 2024-03-01T09:30:00+08:00",
        )
    if moment.utcoffset() is None:
        raise PydanticCustomError("datetime_naive", "needs an explicit UTC offset, e.g. +08:00 or Z")
    if 1 < moment.year < 9999:
        return moment  # a day away from the ends of the calendar: every offset and time zone can hold it
    try:
        # Fail here, not later in business_date, for instants the policy calendar cannot hold.
        moment.astimezone(POLICY_TZ)
    except OverflowError:
        raise PydanticCustomError("datetime_value", "out of the representable range") from None
    return moment


def check_month(value: str) -> str:
    match = _MONTH.fullmatch(value)
    if match is None or match.group(1) == "0000":
        raise PydanticCustomError("month_format", "must be a month YYYY-MM")
    return value


def month_start(month: str) -> date:
    """First day of a validated ``YYYY-MM`` month."""
    return date(int(month[:4]), int(month[5:7]), 1)


_DAYS: dict[datetime, date] = {}
"""Business dates already found, by instant (equal instants, whatever their offsets, are one day): events come in
runs of nearby instants, and the time zone's conversion costs ten times the look-up."""
_DAYS_MAX = 1 << 14


def business_date(moment: datetime) -> date:
    day = _DAYS.get(moment)
    if day is None:
        if len(_DAYS) >= _DAYS_MAX:
            _DAYS.clear()
        day = _DAYS[moment] = moment.astimezone(POLICY_TZ).date()
    return day


def _native_text(pattern: str, schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """A string of `pattern`'s shape, then read by pydantic-core as `schema` (lax: from its text)."""
    return core_schema.chain_schema([core_schema.str_schema(pattern=pattern, strict=True), schema])


# Natively, a subset of what the parsers take, read to the same value. Instants: years 1000-8999 only (the ends of
# the calendar are parse_occurred_at's to check), offsets within a day, at most microseconds.
register(parse_date, _native_text(rf"^{_DATE.pattern}$", core_schema.date_schema(strict=False)))
register(
    parse_occurred_at,
    _native_text(
        r"^[1-8][0-9]{3}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
        r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$",
        core_schema.datetime_schema(strict=False),
    ),
)
register(
    check_month,
    core_schema.str_schema(
        pattern=r"^(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(?:0[1-9]|1[0-2])$", strict=True
    ),
)


Date = Annotated[date, BeforeValidator(parse_date)]
OccurredAt = Annotated[datetime, BeforeValidator(parse_occurred_at)]
# Kept as the wire string: months are keys and labels downstream; month_start() gives the date.
Month = Annotated[
    str,
    AfterValidator(check_month),
    WithJsonSchema({"type": "string", "pattern": MONTH_PATTERN}),
]
