"""The SQL types of the schema's columns, for statements that pass a column's values as one typed array, and the
primary keys of its tables.

They are read from `schema_columns`, a module generated from the schema's one definition (`db.tables`, through
SQLAlchemy's PostgreSQL dialect) by `python -m ledger.db.columns > ledger/db/schema_columns.py`, so that a process
that only reads and writes the ledger loads no SQLAlchemy; tests/ledger/test_schema.py holds the two equal."""

from __future__ import annotations

import functools
import json


@functools.cache
def column_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """From the schema's definition of `table`, or of the table a copy named `<prefix>_<name>` was made from (a
    replay's temporary copies: `replay_member_state`, `replay_settlements` for ledger_settlements)."""
    types = _columns()[_definition(table)]
    return [types[column] for column in columns]


def table_columns(table: str) -> dict[str, str]:
    """Each column of the schema's table `table`, in order, with its SQL type."""
    return _columns()[table]


def primary_key(table: str) -> tuple[str, ...]:
    from .schema_columns import KEYS

    return KEYS[table]


def _columns() -> dict[str, dict[str, str]]:
    """Imported when first asked for: `python -m ledger.db.columns` regenerates the module even when it is broken."""
    from .schema_columns import COLUMNS

    return COLUMNS


def _definition(table: str) -> str:
    if table in _columns():
        return table
    copied = [
        (len(short), name)
        for name in _columns()
        for short in {name, name.removeprefix("ledger_")}
        if table.endswith("_" + short)
    ]
    if not copied:
        raise ValueError(f"{table} is not a table of the schema or a copy of one")
    return max(copied)[1]


def generated() -> str:
    """The text of `schema_columns` as `db.tables` defines the schema."""
    from sqlalchemy.dialects import postgresql

    from .tables import metadata

    dialect = postgresql.dialect()
    lines = [
        '"""Generated from `ledger.db.tables` by `python -m ledger.db.columns`: do not edit (see `db.columns`)."""',
        "",
        "COLUMNS: dict[str, dict[str, str]] = {",
    ]
    for name, table in metadata.tables.items():
        lines.append(f"    {_quoted(name)}: {{")
        lines += [
            f"        {_quoted(column.name)}: {_quoted(column.type.compile(dialect=dialect))},"
            for column in table.columns
        ]
        lines.append("    },")
    lines += ["}", "", "KEYS: dict[str, tuple[str, ...]] = {"]
    for name, table in metadata.tables.items():
        key = ", ".join(_quoted(column.name) for column in table.primary_key.columns)
        lines.append(f"    {_quoted(name)}: ({key}{',' if len(table.primary_key.columns) == 1 else ''}),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quoted(name: str) -> str:
    return json.dumps(name)  # a Python string literal too, as the formatter writes it


if __name__ == "__main__":
    print(generated(), end="")
