"""The parameter set a ledger records: every value of every policy version as it was in force, not only the
values a deployment's file changed.

A file names only what it changes; the rest are the defaults of the code that settled. Recording the file alone
would leave those defaults to whatever code replays the ledger later, so a default corrected in a later release
would make an auditor's replay disagree with settlements that were right under the values of their day.

The recorded text is TOML that `parse_parameters` reads like any parameter file: each policy version's table
names every parameter; `meta.complete` says so; `meta.unset` names those that were unset (TOML has no null);
`meta.file` keeps the deployment's file as it was given, comments included.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import tomllib
from collections.abc import Mapping
from decimal import Decimal

from .parameters import ParameterSet, parse_parameters
from .registry import PolicyRegistry

HEADER = "# Every parameter value in force for each policy version, as medledger recorded it with the events.\n"


def recorded_parameters(text: str, source: str | None = None) -> str:
    """The complete parameter set in force under the parameter file `text` (empty: the built-in defaults). A set
    recorded before, given back as the file (to settle exactly as then), is recorded as it was: its values, with
    the file it recorded."""
    given = parse_parameters(text, source)
    # Strict, as for any file: this release must know every policy version and parameter the set names.
    registry = PolicyRegistry(dataclasses.replace(given, complete=False))
    file = tomllib.loads(text).get("meta", {}).get("file", "") if given.complete else text
    return complete(given, registry, file)


def complete(given: ParameterSet, registry: PolicyRegistry, text: str = "") -> str:
    tables: list[str] = []
    unset: dict[str, list[str]] = {}
    for policy in registry.all():
        lines = [f"\n[policy.{_string(policy.policy_id)}]"]
        raw = given.overrides.get(policy.policy_id, {})
        for field in dataclasses.fields(policy.params):
            value = getattr(policy.params, field.name)
            if value is None:
                unset.setdefault(policy.policy_id, []).append(field.name)
            elif field.metadata.get("build"):
                # Built from the file's own table, which is the whole of it: no default lies beneath.
                if field.name not in raw:
                    raise ValueError(f"{policy.policy_id}.{field.name}: a built default cannot be recorded")
                lines.append(f"{_string(field.name)} = {_value(raw[field.name])}")
            else:
                lines.append(f"{_string(field.name)} = {_value(value)}")
        tables.append("\n".join(lines) + "\n")
    meta = ["[meta]", "complete = true"]
    if text:
        meta.append(f"file = {_multiline(text)}")
    meta.append("unset = " + _value({policy_id: tuple(names) for policy_id, names in unset.items()}))
    return HEADER + "\n".join(meta) + "\n" + "".join(tables)


def policy_values(recorded: str, policy_id: str) -> dict | None:
    """One policy version's values as a complete recorded set holds them, None for those it left unset; None for
    a set recorded as the parameter file alone (as medledger recorded them before it kept every value), whose
    other values were the defaults of the release that settled."""
    document = tomllib.loads(recorded)
    meta = document.get("meta", {})
    if meta.get("complete") is not True:
        return None
    values = dict(document.get("policy", {}).get(policy_id, {}))
    values.update(dict.fromkeys(meta.get("unset", {}).get(policy_id, ())))
    return values


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _string(str(value))  # exact, exponent included: read back as the same Decimal
    if isinstance(value, float):  # only where a file gave one (a table a builder reads): TOML reads it back
        return (
            repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else f"{'-' if value < 0 else ''}inf")
        )
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date: TOML's own literals
        return value.isoformat()
    if isinstance(value, str):
        return _string(value)
    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        if any(item is None for item in value.values()):
            raise ValueError(f"a nested parameter is unset, which a parameter file cannot say: {value!r}")
        return "{ " + ", ".join(f"{_string(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise ValueError(f"a parameter of type {type(value).__name__} cannot be recorded: {value!r}")


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, everything else as it is."""
    return '"' + _escaped(text) + '"'


def _multiline(text: str) -> str:
    """A TOML multi-line basic string, its lines as they are (the newline after the opening quotes is not part of
    it), so the recorded file reads as it was written."""
    return '"""\n' + _escaped(text, multiline=True) + '"""'


def _escaped(text: str, multiline: bool = False) -> str:
    kept = "\n" if multiline else ""
    out = []
    for at, char in enumerate(text):
        # In a multi-line string a quote needs escaping only where it could join others into the closing three.
        if char == "\\" or char == '"' and (not multiline or text[at + 1 : at + 2] in ('"', "")):
            out.append("\\" + char)
        elif (char < " " or char == "\x7f") and char not in kept:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)
