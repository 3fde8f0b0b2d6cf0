"""The contract's checks run inside pydantic-core for the input nearly every producer sends.

The models stay the one definition of the contract (their JSON Schema, their error texts). From their core schema
a second validator is derived mechanically: every Python parser that has a native equivalent (``register``) is
swapped for it, a pydantic-core schema (pattern, decimal, date, enum, bounds) that accepts a subset of what the
parser accepts, as the same value. Input the native validator refuses is validated again by the models themselves,
so a refusal reads word for word as the parser words it, and input only the parser takes (money as a JSON number,
say) is still taken, only slower.

The equivalence holds over JSON values (dict, list, str, int, Decimal, float, bool, None), which is all the wire
can carry: a Python caller handing in other objects (a set, bytes) goes through the native validator's lax
coercions first and may see them taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_core import CoreSchema, SchemaValidator

_NATIVE: dict[Callable[..., Any], CoreSchema | None] = {}


def register(parser: Callable[..., Any], native: CoreSchema | None) -> None:
    """`parser` (a before- or after-validator's function) reads the same as `native` for what `native` accepts.
    `native` None: the parser only reshapes what its inner schema checks, which then runs alone, lax (an array
    read as a tuple)."""
    _NATIVE[parser] = native


def native_schema(schema: CoreSchema) -> CoreSchema:
    """`schema` with every registered parser replaced by its native schema."""
    return _replaced(schema)


def native_validator(schema: CoreSchema) -> SchemaValidator:
    """A validator of `schema` with every registered parser replaced by its native schema."""
    replaced = _replaced(schema)
    # pydantic-core reuses a complete model class's own validator for a "model" node, whatever the node says:
    # marked incomplete while this one is built, each model is built from the replaced schema instead.
    complete = {cls: cls.__dict__.get("__pydantic_complete__", False) for cls in _models(replaced)}
    for cls in complete:
        cls.__pydantic_complete__ = False
    try:
        return SchemaValidator(replaced)
    finally:
        for cls, was in complete.items():
            cls.__pydantic_complete__ = was


def _models(node: Any) -> set[type[Any]]:
    if isinstance(node, list):
        return set().union(*(_models(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = {node["cls"]} if node.get("type") == "model" else set()
    return found.union(*(_models(value) for value in node.values()))


def _replaced(node: Any) -> Any:
    if isinstance(node, list):
        return [_replaced(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") in ("function-before", "function-after"):
        function = node["function"]["function"]
        if function in _NATIVE:
            native = _NATIVE[function]
            if native is None:
                return _lax(_replaced(node["schema"]))
            # a serialiser kept: what reads the native schema (the fast decoder) sees the value is dumped its own way
            kept = {key: node[key] for key in ("ref", "metadata", "serialization") if key in node}
            return {**native, **kept}
    return {key: _replaced(value) for key, value in node.items()}


def _lax(node: dict[str, Any]) -> dict[str, Any]:
    if node["type"] == "nullable":
        return {**node, "schema": _lax(node["schema"])}
    return {**node, "strict": False}
