"""Policy parameters: one typed, frozen structure per policy version, overridable from a TOML parameter file.

A parameter file names policy versions and the values to change:

    [policy."640000-2023"]
    retiree_average_pension = "3000.00"

    [policy."640000-2023".general_ratio.in_service]
    "3A" = "0.60"

Money and ratios are written as strings (or integers) so no binary fraction reaches a settlement. Nested tables
merge into the defaults key by key; a table given for a parameter whose default is absent (Inner Mongolia's
`outpatient`) is built from the file alone.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, get_type_hints

from .money import dec


class ParameterError(ValueError):
    pass


class Table(Mapping[Any, Any]):
    """A read-only, hashable mapping: parameter tables are values, usable as dataclass defaults."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()):
        self._items = dict(items)

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    # The dict's own, not Mapping's (a lookup and a KeyError caught in Python): rules ask them of a table per visit.
    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: Any, default: Any = None) -> Any:
        return self._items.get(key, default)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return f"Table({self._items!r})"


@dataclasses.dataclass(frozen=True)
class ParameterSet:
    """Overrides per policy id, as read from a parameter file."""

    overrides: Mapping[str, Mapping[str, Any]] = Table()
    source: str | None = None
    # Per policy id, the parameters to leave unset whatever their default (`meta.unset`): a recorded set
    # (`policies.recorded`) says so of the parameters that had no value when it was recorded.
    unset: Mapping[str, tuple[str, ...]] = Table()
    # A set a ledger recorded (`meta.complete`): what a later release no longer knows (a policy version or a
    # parameter it dropped) is passed over rather than refused, so the history it settled can still be replayed.
    complete: bool = False

    def policy_ids(self) -> set[str]:
        """The policy versions it names, which must all be known (unless it is a complete set)."""
        return set() if self.complete else set(self.overrides) | set(self.unset)

    def merged(self, other: ParameterSet) -> ParameterSet:
        """This set with `other`'s values laid over it, table by table (a what-if on top of what was used)."""

        def deep(base: Mapping, top: Mapping) -> dict:
            result = dict(base)
            for key, value in top.items():
                result[key] = (
                    deep(base[key], value)
                    if isinstance(value, Mapping) and isinstance(base.get(key), Mapping)
                    else value
                )
            return result

        unset = {
            key: tuple(dict.fromkeys(self.unset.get(key, ()) + other.unset.get(key, ())))
            for key in set(self.unset) | set(other.unset)
        }
        # What `other` unsets is unset over this set's values too, unless `other` itself gives it a value.
        base = {
            key: {
                n: v
                for n, v in values.items()
                if n not in other.unset.get(key, ()) or n in other.overrides.get(key, {})
            }
            for key, values in self.overrides.items()
        }
        return ParameterSet(
            Table(deep(base, other.overrides)), other.source or self.source, Table(unset), self.complete
        )

    def apply(self, policy_id: str, defaults: Any) -> Any:
        """`defaults` with what this set leaves unset cleared first, then its values laid over them (so a what-if
        may still give a value to what a recorded set left unset)."""
        known = {field.name for field in dataclasses.fields(defaults)}
        for name in self.unset.get(policy_id, ()):
            if name in known:
                defaults = dataclasses.replace(defaults, **{name: None})
            elif not self.complete:
                raise ParameterError(f"{policy_id}: unknown parameter {name!r} in meta.unset")
        values = self.overrides.get(policy_id)
        if values and self.complete:
            values = {name: value for name, value in values.items() if name in known}
        return defaults if not values else override(defaults, values, policy_id)


def load_parameters(path: str | Path) -> ParameterSet:
    with open(path, "rb") as handle:
        return parse_parameters(handle.read().decode("utf-8"), str(path))


def parse_parameters(text: str, source: str | None = None) -> ParameterSet:
    """A parameter set from TOML text; the empty text is the built-in defaults."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ParameterError(f"{source or 'parameters'}: {error}") from None
    unknown = set(document) - {"policy", "meta"}
    if unknown:
        raise ParameterError(f'{source}: unknown top-level tables {sorted(unknown)}; expected [policy."ID"]')
    policies = document.get("policy", {})
    meta = document.get("meta", {})
    if not isinstance(meta, Mapping) or set(meta) - META:
        raise ParameterError(f"{source or 'parameters'}: [meta] may hold only {sorted(META)}")
    complete = meta.get("complete", False)
    if not isinstance(complete, bool):
        raise ParameterError(f"{source or 'parameters'}: meta.complete: expected true or false")
    return ParameterSet(Table(policies), source, _unset_of(meta, source), complete)


# What a parameter file's [meta] table may say: written by medledger in the sets it records (`policies.recorded`).
META = frozenset({"complete", "unset", "file"})


def _unset_of(meta: object, source: str | None) -> Table:
    where = f"{source or 'parameters'}: meta.unset"
    unset = meta.get("unset", {}) if isinstance(meta, Mapping) else {}
    if not isinstance(unset, Mapping) or not all(
        isinstance(names, list) and all(isinstance(name, str) for name in names) for names in unset.values()
    ):
        raise ParameterError(f'{where}: expected a table of lists of parameter names, {{ "POLICY-ID" = ["name"] }}')
    return Table({policy_id: tuple(names) for policy_id, names in unset.items()})


def override(defaults: Any, values: Mapping[str, Any], where: str) -> Any:
    """A copy of the dataclass `defaults` with `values` merged in; every value is checked against its default."""
    hints = get_type_hints(type(defaults))
    known = {f.name: f for f in dataclasses.fields(defaults)}
    changes = {}
    for name, value in values.items():
        if name not in known:
            raise ParameterError(f"{where}: unknown parameter {name!r}; known: {sorted(known)}")
        current = getattr(defaults, name)
        builder = known[name].metadata.get("build")
        changes[name] = _merge(current, value, f"{where}.{name}", builder, hints[name])
    return dataclasses.replace(defaults, **changes)


def _merge(current: Any, value: Any, where: str, builder: Callable[[Any, str], Any] | None, hint: object) -> Any:
    if current is None and builder is not None:
        if not isinstance(value, Mapping):
            raise ParameterError(f"{where}: expected a table")
        return builder(value, where)
    if dataclasses.is_dataclass(current):
        if not isinstance(value, Mapping):
            raise ParameterError(f"{where}: expected a table")
        return override(current, value, where)
    if isinstance(current, Mapping):
        if not isinstance(value, Mapping):
            raise ParameterError(f"{where}: expected a table")
        merged = dict(current)
        for key, item in value.items():
            if key not in current:
                raise ParameterError(f"{where}: unknown key {key!r}; known: {sorted(current)}")
            merged[key] = _merge(current[key], item, f"{where}.{key}", None, None)
        return Table(merged)
    if isinstance(current, tuple):
        if not isinstance(value, list) or len(value) != len(current):
            raise ParameterError(f"{where}: expected a list of {len(current)} values")
        return tuple(_merge(c, v, f"{where}[{i}]", None, None) for i, (c, v) in enumerate(zip(current, value)))
    if isinstance(current, bool) or current is None and hint is bool:
        if not isinstance(value, bool):
            raise ParameterError(f"{where}: expected true or false")
        return value
    if isinstance(current, Decimal) or current is None:
        try:
            return dec(value)
        except (TypeError, ArithmeticError) as error:
            raise ParameterError(f"{where}: {error}") from None
    if isinstance(current, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParameterError(f"{where}: expected an integer")
        return value
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ParameterError(f"{where}: expected a string")
        return value
    raise ParameterError(f"{where}: cannot be overridden")


def table(**values: object) -> Table:
    """A read-only parameter table with Decimal values, written as literals in the defaults."""
    return Table({k: _frozen(v) for k, v in values.items()})


def _frozen(value: object) -> object:
    if isinstance(value, Mapping):
        return Table({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return dec(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else value
