"""Small reusable field types shared by the event models."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

E = TypeVar("E", bound=StrEnum)

EventId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MemberId = Annotated[str, StringConstraints(min_length=1, max_length=40)]
# The contract gives no length for other identifiers and codes; only emptiness is clearly wrong.
Code = Annotated[str, StringConstraints(min_length=1)]


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
