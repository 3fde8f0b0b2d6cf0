"""Small reusable field types shared by the event models.

Every string field has a maximum length (docs/contract-limits.md) and holds only characters PostgreSQL text can
store: no NUL (U+0000, which JSON can write as the escape \\u0000) and no lone surrogate (U+D800-U+DFFF, which no
UTF-8 byte sequence encodes). Such input is refused by the contract, naming the field, instead of failing later
in the database."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

E = TypeVar("E", bound=StrEnum)

EVENT_ID_MAX = 64
MEMBER_ID_MAX = 40  # 人员编号 psn_no
IDENTIFIER_MAX = 64  # visit, payment and facility ids
CODE_MAX = 50  # the national interface's width for codes: disease (ICD-10) and catalogue item codes
TEXT_MAX = 500  # free text: the reason a visit was reversed

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# For the JSON Schema, the NUL alone: a lone surrogate cannot be written in UTF-8 JSON text at all (only as an
# escape), and validators differ on whether a pattern sees a surrogate pair as one character or two.
_STORABLE_PATTERN = "^[^\\u0000]*$"


class _Storable:
    """``Annotated[str, ..., _Storable()]``: refuses the characters PostgreSQL text cannot store."""

    def __get_pydantic_core_schema__(self, source: Any, handler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": _STORABLE_PATTERN}


def _storable(value: str) -> str:
    found = _UNSTORABLE.search(value)
    if found is None:
        return value
    if found[0] == "\x00":
        raise PydanticCustomError("string_nul", "must not contain a NUL character (U+0000)")
    code = f"{ord(found[0]):04X}"
    raise PydanticCustomError("string_surrogate", "must not contain a lone surrogate (U+{code})", {"code": code})


STORABLE = _Storable()

EventId = Annotated[str, StringConstraints(min_length=1, max_length=EVENT_ID_MAX), STORABLE]
MemberId = Annotated[str, StringConstraints(min_length=1, max_length=MEMBER_ID_MAX), STORABLE]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=IDENTIFIER_MAX), STORABLE]
Code = Annotated[str, StringConstraints(min_length=1, max_length=CODE_MAX), STORABLE]
FreeText = Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX), STORABLE]


def wire_enum(enum_cls: type[E]) -> BeforeValidator:
    """Validator for ``Annotated[E, wire_enum(E)]``: accepts E's values as plain ``str`` only.

    Pydantic's lax enum mode would also take ``bytes``; its strict mode would refuse the plain
    strings JSON gives us. This sits between the two.
    """
    by_value = {member.value: member for member in enum_cls}
    expected = ", ".join(repr(value) for value in by_value)

    def parse(value: Any) -> Any:
        if isinstance(value, enum_cls):
            return value
        if type(value) is str and value in by_value:
            return by_value[value]
        raise PydanticCustomError("enum", "must be one of {expected}", {"expected": expected})

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

    return BeforeValidator(parse)
