"""Money on the wire: a JSON string or number in yuan, at most 2 decimals, never negative.

Values are held as ``Decimal`` exactly as sent. Binary floats are refused outright rather than
converted, because a float has already lost the fen by the time we see it; JSON text must be
decoded with ``json.loads(..., parse_float=Decimal)`` (``decode_line`` does this).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

from .native import register

MAX_INTEGER_DIGITS = 15
"""Amounts stay below 10**15 yuan so any sum of a year's amounts fits the default 28-digit
decimal context without silent rounding."""

_LIMIT = Decimal(10) ** MAX_INTEGER_DIGITS
_ONE = Decimal(1)

# ASCII digits only: Decimal() would happily read Arabic-Indic or full-width digits.
_PLAIN = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_SCHEMA_PATTERN = rf"^(0|[1-9][0-9]{{0,{MAX_INTEGER_DIGITS - 1}}})(\.[0-9]{{1,2}})?$"
# What nearly every producer sends: a string already in range, not negative, at most 2 decimals.
_WELL_FORMED = re.compile(_SCHEMA_PATTERN[1:-1])


_KNOWN: dict[str, Decimal] = {}
"""Well-formed amounts already read, by their exact text (a Decimal is immutable, and "300" and "300.00" are two
keys): the same few amounts come again and again."""
_KNOWN_MAX = 1 << 16


def parse_money(value: Any) -> Decimal:
    """Turn a wire value into an exact ``Decimal`` or raise a pydantic error saying why not."""
    if type(value) is str:
        known = _KNOWN.get(value)
        if known is not None:
            return known
        if _WELL_FORMED.fullmatch(value):
            if len(_KNOWN) >= _KNOWN_MAX:
                _KNOWN.clear()
            known = _KNOWN[value] = Decimal(value)
            return known
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        if isinstance(value, float):
            raise PydanticCustomError(
                "money_float",
                "money must not be a binary float; decode JSON with parse_float=Decimal",
            )
        raise PydanticCustomError("money_type", "money must be a JSON string or number")
    if isinstance(value, str):
        if _WELL_FORMED.fullmatch(value):
            return Decimal(value)
        if not _PLAIN.fullmatch(value):
            raise PydanticCustomError("money_format", 'money must be a plain decimal number such as "123.45"')
        amount = Decimal(value)
    else:
        amount = Decimal(value)
        if not amount.is_finite():
            raise PydanticCustomError("money_format", "money must be a finite number")
    # is_signed() also catches "-0.00": a minus sign on money is always a producer error.
    if amount.is_signed():
        raise PydanticCustomError("money_negative", "must not be negative")
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]  # finite, so an int
        raise PydanticCustomError("money_precision", "at most 2 decimal places allowed")
    if amount >= _LIMIT:
        raise PydanticCustomError("money_too_large", "must be less than {limit}", {"limit": str(_LIMIT)})
    if amount.as_tuple().exponent > 0:  # type: ignore[operator]
        # JSON 1e2 arrives as Decimal('1E+2'); store the plain form so output never shows exponents.
        amount = amount.quantize(_ONE)
    return amount


# Natively: a string in the well-formed shape, or a JSON integer in range, read as Decimal(value) as parse_money
# reads them; a JSON number with a fraction (a Decimal from the parser) is the parser's to check.
register(
    parse_money,
    core_schema.union_schema(
        [
            core_schema.chain_schema(
                [core_schema.str_schema(pattern=_SCHEMA_PATTERN, strict=True), core_schema.decimal_schema(strict=False)]
            ),
            core_schema.chain_schema(
                [core_schema.int_schema(ge=0, lt=int(_LIMIT), strict=True), core_schema.decimal_schema(strict=False)]
            ),
        ],
        mode="left_to_right",
    ),
)


Money = Annotated[
    Decimal,
    BeforeValidator(parse_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _SCHEMA_PATTERN},
                {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMaximum": int(_LIMIT),
                    "multipleOf": 0.01,
                },
            ],
            "description": "Yuan, at most 2 decimal places, not negative.",
        }
    ),
]
