"""Reading the fields of a national message: present, of the right kind, money to the fen. Each problem is
refused naming the field (`where` says in which part of the message)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

from ledger.contract import POLICY_TZ

from .errors import bad_field

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # the platform's 时间 fields, Beijing time
DATE_FORMAT = "%Y-%m-%d"
MAX_TEXT = 100


@overload
def text(data: dict, name: str, where: str, required: Literal[True] = True, limit: int = MAX_TEXT) -> str: ...


@overload
def text(data: dict, name: str, where: str, required: bool, limit: int = MAX_TEXT) -> str | None: ...


def text(data: dict, name: str, where: str, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    """The field `name` as text; None when it is absent and not `required`."""
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise bad_field(f"{where}.{name}", "is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise bad_field(f"{where}.{name}", f"must be a string, got {type(value).__name__}")
    if len(value) > limit or not value.isprintable():
        raise bad_field(f"{where}.{name}", f"must be printable and at most {limit} characters")
    return value


def number(data: dict, name: str, where: str) -> Decimal:
    value = data.get(name)
    if value is None or value == "":
        raise bad_field(f"{where}.{name}", "is required")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise bad_field(f"{where}.{name}", f"must be a number, got {type(value).__name__}")
    try:
        parsed = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise bad_field(f"{where}.{name}", f"{value!r} is not a number") from None
    if not parsed.is_finite() or parsed < 0 or parsed >= Decimal(10) ** 12:
        raise bad_field(f"{where}.{name}", f"{value} is out of range")
    return parsed


def money(data: dict, name: str, where: str) -> Decimal:
    amount = number(data, name, where)
    if amount != amount.quantize(Decimal("0.01")):
        raise bad_field(f"{where}.{name}", f"{amount} has more than 2 decimals")
    return amount.quantize(Decimal("0.01"))


def moment(data: dict, name: str, where: str) -> datetime:
    value = text(data, name, where)
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=POLICY_TZ)
    except ValueError:
        raise bad_field(f"{where}.{name}", f"{value!r} is not yyyy-MM-dd HH:mm:ss") from None


def day(data: dict, name: str, where: str) -> date:
    value = text(data, name, where)
    try:
        return datetime.strptime(value[:10], DATE_FORMAT).date()
    except ValueError:
        raise bad_field(f"{where}.{name}", f"{value!r} is not yyyy-MM-dd") from None


def flag(data: dict, name: str, where: str, default: bool = False) -> bool:
    value = data.get(name)
    if value is None or value == "":
        return default
    if str(value) not in {"0", "1"}:
        raise bad_field(f"{where}.{name}", f"must be 1 or 0, got {value!r}")
    return str(value) == "1"


def section(data: Any, name: str, where: str) -> dict:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise bad_field(f"{where}.{name}", "must be an object")
    return value


def rows(data: Any, name: str, where: str) -> list[dict]:
    value = data.get(name) if isinstance(data, dict) else None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(row, dict) for row in value):
        raise bad_field(f"{where}.{name}", "must be a non-empty list of objects")
    return value
