"""Small reusable field types shared by the event models.

Every string field has a maximum length (docs/contract-limits.md) and holds only characters PostgreSQL text can
store: no NUL (U+0000, which JSON can write as the escape \\u0000) and no lone surrogate (U+D800-U+DFFF, which no
UTF-8 byte sequence encodes). Such input is refused by the contract, naming the field, instead of failing later
in the database."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError, core_schema

from .native import register

E = TypeVar("E", bound=StrEnum)

EVENT_ID_MAX = 64
MEMBER_ID_MAX = 40  # 人员编号 psn_no
IDENTIFIER_MAX = 64  # visit, payment and facility ids
CODE_MAX = 50  # the national interface's width for codes: disease (ICD-10) and catalogue item codes
TEXT_MAX = 500  # free text: the reason a visit was reversed

STORABLE = r"^[^\x00]*$"
"""No NUL anywhere: a pattern both the validator (Rust's regex) and JSON Schema (ECMA-262) read alike. A lone
surrogate the string validator refuses before it: no UTF-8 text can hold one."""


def text(max_length: int) -> Any:
    """A string of 1 to `max_length` characters, each one PostgreSQL text can store."""
    return Annotated[str, StringConstraints(min_length=1, max_length=max_length, pattern=STORABLE)]


EventId = text(EVENT_ID_MAX)
MemberId = text(MEMBER_ID_MAX)
Identifier = text(IDENTIFIER_MAX)
Code = text(CODE_MAX)
FreeText = text(TEXT_MAX)


def wire_enum(enum_cls: type[E]) -> BeforeValidator:
    """Validator for ``Annotated[E, wire_enum(E)]``: accepts E's values as plain ``str`` only.

    Pydantic's lax enum mode would also take ``bytes``; its strict mode would refuse the plain
    strings JSON gives us. This sits between the two.
    """
    by_value = {member.value: member for member in enum_cls}
    expected = ", ".join(repr(value) for value in by_value)

    def parse(value: Any) -> Any:
        if type(value) is str:
            member = by_value.get(value)
            if member is not None:
                return member
        elif isinstance(value, enum_cls):
            return value
        raise PydanticCustomError("enum", "must be one of {expected}", {"expected": expected})

    members = list(by_value.values())
    native = core_schema.enum_schema(enum_cls, members, sub_type="str", strict=False)
    register(parse, core_schema.chain_schema([core_schema.str_schema(strict=True), native]))
    return BeforeValidator(parse)


def wire_list(*, min_items: int = 0, nullable: bool = False) -> BeforeValidator:
    """Accept a JSON array, store a tuple: frozen events stay immutable all the way down."""

    def parse(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if len(value) < min_items:
                raise PydanticCustomError("too_short", "at least {min} item(s) required", {"min": min_items})
            return tuple(value)
        if value is None and nullable:
            return None
        raise PydanticCustomError("list_type", "must be a list")

    register(parse, None)  # natively: the tuple schema itself, reading an array (its length checked there too)
    return BeforeValidator(parse)
