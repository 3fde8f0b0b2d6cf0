"""The SQL types of the schema's columns, for statements that pass a column's values as one typed array."""

from __future__ import annotations

import functools

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from .tables import metadata


@functools.cache
def column_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """From the schema's definition of `table`, or of the table a copy named `<prefix>_<name>` was made from (a
    replay's temporary copies: `replay_member_state`, `replay_settlements` for ledger_settlements)."""
    definition = _definition(table)
    return [definition.c[column].type.compile(dialect=postgresql.dialect()) for column in columns]


def _definition(table: str) -> Table:
    if table in metadata.tables:
        return metadata.tables[table]
    copied = [
        (len(short), definition)
        for name, definition in metadata.tables.items()
        for short in {name, name.removeprefix("ledger_")}
        if table.endswith("_" + short)
    ]
    if not copied:
        raise ValueError(f"{table} is not a table of the schema or a copy of one")
    return max(copied, key=lambda found: found[0])[1]
