"""A batch's writes, sent as one statement when the batch is small and as COPY where it is large.

In one statement, each write is a data-modifying CTE over `unnest()` of one array parameter a column. PostgreSQL
runs every data-modifying CTE of a statement exactly once, whether or not the statement reads its result, and
checks foreign keys at the end of the statement, so a row may reference a row inserted beside it. A small batch's
events, ledger rows, projections, outbox records and consumed offsets then cost one round trip where a statement
a table cost some fifteen (COPY costs two), all of them with the append lock held: what a small batch's latency
is mostly made of, and what limits a writer's rate when the database is across a network. The CTEs of one
statement all see the data as it was before it, so two writes of a batch must never touch the same row.

A large batch is written a statement at a time, in the order the writes were added, its plain inserts by COPY:
there the round trips are few against the rows, and COPY stores rows in bulk for less CPU (and less memory: no
array a column of the whole batch) than an INSERT from arrays does.

Rows made mostly of numbers (member_year's: eleven numeric columns a row) may go as one document instead
(`document=True`): a JSON array of the rows, each an array of its values in the columns' order, encoded by msgspec
in one call (Decimals and dates as their strings) and taken apart by PostgreSQL (`jsonb_array_elements`), each value
cast to its column's type from the text a COPY in text form would carry. The values stored are those COPY stores;
what the client saves is asyncpg's binary encoding of each value, a Python object's digits for every numeric. Rows
of long text (a settlement's record) cost more as a document than by COPY: they stay as they are. A jsonb value
holds less than 256 MB: rows past `DOCUMENT_ROWS` go in further documents, each written by a statement of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .columns import column_types

# Rows a batch writes (`BatchRows.size`) from which it is written as a large batch.
LARGE = 400
# Rows a document holds at most: some 15 MB of member_year rows, far below what a jsonb value can hold.
DOCUMENT_ROWS = 50_000


@dataclass
class _Write:
    statement: str
    arguments: list = field(default_factory=list)
    result: str | None = None  # an aggregate over the rows the statement returns
    copy: tuple[str, Sequence[str], Sequence[tuple]] | None = None  # (table, columns, rows) to COPY instead
    after_copy: str | None = None  # a query read right after the COPY, standing in for `result`


class Writes:
    def __init__(self, large: bool = False) -> None:
        """`large`: a statement at a time, plain inserts by COPY (see the module)."""
        self.large = large
        self._writes: list[_Write] = []
        self._arguments: list = []  # the parameters given so far: the whole statement's, or the next write's
        # queries of values as the data stood before any of the writes, with their own parameters in large mode
        self._before: list[tuple[str, list]] = []
        self._asked: list[tuple[str, int]] = []  # what `run` returns, in order: ("before" | "write", index)
        # the write that makes the staging tables (`staged`): rows then go through tables emptied at commit, so the
        # batch needs a transaction
        self._staging: _Write | None = None

    @classmethod
    def sized(cls, rows: int) -> Writes:
        return cls(large=rows >= LARGE)

    def parameter(self, value: object, kind: str) -> str:
        """A parameter of the write about to be added, as `$n::kind` text."""
        self._arguments.append(value)
        return f"${len(self._arguments)}::{kind}"

    def arrays(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> list[str]:
        """One array parameter a column of `rows` (typed as `table`'s column)."""
        types = column_types(table, tuple(columns))
        return [self.parameter(list(values), kind + "[]") for values, kind in zip(zip(*rows), types, strict=True)]

    def before(self, query: str, *arguments: tuple[object, str]) -> int:
        """A value (a query for one) as the data stood before any write of the batch: its index in what `run`
        returns. `arguments` are (value, type) pairs that `query` names as {0}, {1}, ... (then it may hold no
        other braces)."""
        if self.large:  # sent as a statement of its own, with parameters of its own
            names = [f"${n}::{kind}" for n, (_, kind) in enumerate(arguments, start=1)]
            values = [value for value, _ in arguments]
        else:
            names, values = [self.parameter(value, kind) for value, kind in arguments], []
        self._before.append((query.format(*names) if arguments else query, values))
        return self._ask("before", len(self._before) - 1)

    def add(self, statement: str, result: str | None = None) -> int | None:
        """A write (INSERT, UPDATE or DELETE) with the parameters given since the last one. With `result`, an
        aggregate over the rows it returns (`max(id)` of `... RETURNING id`): its index in what `run` returns."""
        write = _Write(statement, result=result)
        if self.large:
            write.arguments, self._arguments = self._arguments, []
        self._writes.append(write)
        return None if result is None else self._ask("write", len(self._writes) - 1)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[tuple],
        ordered: bool = False,
        newest: str | None = None,
        document: bool = False,
    ) -> int | None:
        """Rows in; `ordered`: in the order given (a default such as a sequence numbers them so). With `newest`, a
        column numbered by a sequence: the index in what `run` returns of its greatest value (a large batch's is
        read from the table after them, as far as this transaction sees it). `document`: the rows sent as one
        JSON document (see the module)."""
        if not rows:
            return None
        if document:
            if newest is not None or ordered:
                raise ValueError("rows sent as a document are neither numbered nor kept in order")
            for part in _parts(rows):
                self.add(f"INSERT INTO {table} ({', '.join(columns)}) {self.elements(table, columns, part)}")
            return None
        if self.large:  # COPY stores rows in the order sent
            after = None if newest is None else f"SELECT max({newest}) FROM {table}"
            self._writes.append(_Write("", copy=(table, columns, rows), after_copy=after))
            return None if newest is None else self._ask("write", len(self._writes) - 1)
        statement = _insert_statement(self, table, columns, rows, ordered)
        if newest is None:
            self.add(statement)
            return None
        return self.add(f"{statement} RETURNING {newest}", result=f"max({newest})")

    def _ask(self, kind: str, index: int) -> int:
        self._asked.append((kind, index))
        return len(self._asked) - 1

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        rows: Sequence[tuple],
        updates: str | None = None,
        document: bool = False,
    ) -> None:
        """Rows in, replacing those with the same key (at most one row a key); `updates` overrides the SET list. In
        a large batch the rows are copied into a temporary table of this session first (`staged`), which costs the
        client a third less than arrays of every value: the rows of member_state and member_year a batch writes
        are nearly as many as its events. `document`: the rows sent as one JSON document (see the module)."""
        if not rows:
            return
        if updates is None:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        names = ", ".join(columns)
        conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        if document:  # a statement a document, in a large batch too: the document is a parameter of it
            for part in _parts(rows):  # no two of them meet on a row: one row a key
                self.add(f"INSERT INTO {table} AS t ({names}) {self.elements(table, columns, part)} {conflict}")
            return
        if self.large:
            staging = self.staged(table, columns, rows)
            self.add(
                f"WITH staged AS (DELETE FROM {staging} RETURNING {names}) "
                f"INSERT INTO {table} AS t ({names}) SELECT {names} FROM staged {conflict}"
            )
            return
        arrays = self.arrays(table, columns, rows)
        self.add(f"INSERT INTO {table} AS t ({names}) SELECT * FROM unnest({', '.join(arrays)}) {conflict}")

    def elements(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> str:
        """A SELECT of `rows` as `table`'s `columns`, from one parameter: the rows as a JSON document (see the
        module)."""
        source = f"jsonb_array_elements({self.parameter(document(rows), 'text')}::jsonb)"
        return f"SELECT {_values(table, tuple(columns))} FROM {source} AS r"

    def staged(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> str:
        """A large batch's `rows` copied into a temporary table with `table`'s `columns` (made once a session),
        for a later write of the batch to take them from: its name. That write empties it (DELETE ... RETURNING),
        so that the next batch of the same transaction (a replay's last stretch) finds none; the commit truncates
        its file (temporary tables are never vacuumed), and a rollback leaves none either."""
        staging = f"{table}_staged"
        create = (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA"
        )
        if self._staging is None:  # one round trip makes every staging table the batch uses
            self._staging = _Write(create)
            self._writes.append(self._staging)
        else:
            self._staging.statement += f"; {create}"
        self._writes.append(_Write("", copy=(staging, columns, rows)))
        return staging

    async def run(self, raw: Any) -> tuple:
        """Send it all; the values asked for (`before`, `add(..., result=)`, `insert(..., newest=)`), in the
        order asked."""
        if self.large:
            if self._staging is not None and not raw.is_in_transaction():
                raise RuntimeError(
                    "a large batch's upserts are staged in a table emptied at commit: run it in a transaction"
                )
            found = {("before", n): await raw.fetchval(query, *args) for n, (query, args) in enumerate(self._before)}
            for n, write in enumerate(self._writes):
                if write.copy is not None:
                    table, columns, rows = write.copy
                    await raw.copy_records_to_table(table, records=rows, columns=columns)
                    if write.after_copy is not None:
                        found[("write", n)] = await raw.fetchval(write.after_copy)
                elif write.result is not None:
                    found[("write", n)] = await raw.fetchval(_with([write], [], [("write", 0)]), *write.arguments)
                else:
                    await raw.execute(write.statement, *write.arguments)
            return tuple(found[asked] for asked in self._asked)
        if not self._asked and not self._writes:
            return ()
        return tuple(await raw.fetchrow(_with(self._writes, self._before, self._asked), *self._arguments))[
            : len(self._asked)
        ]


def _parts(rows: Sequence[tuple]) -> list[Sequence[tuple]]:
    return [rows[start : start + DOCUMENT_ROWS] for start in range(0, len(rows), DOCUMENT_ROWS)]


def document(rows: Sequence[tuple]) -> str:
    """Rows as one JSON array of arrays: Decimals and dates as their strings, None as null."""
    return msgspec.json.encode(rows).decode()


# The column types a document's values are read as: what each is cast to from the text of its JSON value.
_DOCUMENT_TYPES = ("TEXT", "INTEGER", "BIGINT", "NUMERIC", "DATE", "JSONB", "BOOLEAN")


@functools.cache
def _values(table: str, columns: tuple[str, ...]) -> str:
    """The select list reading `columns` from `r`, a row of a document: each value's text cast to its column's
    type (a JSONB column's value is the text of its JSON, as the row holds it)."""
    values = []
    for n, kind in enumerate(column_types(table, columns)):
        if not kind.startswith(_DOCUMENT_TYPES):
            raise ValueError(f"{table}.{columns[n]} ({kind}) is not sent in a document")
        values.append(f"r->>{n}" if kind == "TEXT" else f"(r->>{n})::{kind}")
    return ", ".join(values)


def _insert_statement(writes: Writes, table: str, columns: Sequence[str], rows: Sequence[tuple], ordered: bool) -> str:
    names = ", ".join(columns)
    arrays = ", ".join(writes.arrays(table, columns, rows))
    if ordered:
        numbered = f"unnest({arrays}) WITH ORDINALITY AS r({names}, n)"
        return f"INSERT INTO {table} ({names}) SELECT {names} FROM {numbered} ORDER BY n"
    return f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})"


def _with(writes: list[_Write], before: list[tuple[str, list]], asked: list[tuple[str, int]]) -> str:
    """The writes as CTEs of one statement that selects what was asked (or NULL: a statement selects something).
    Every part of a statement sees the data as it was before the statement, so a `before` query is a plain
    subquery of it."""
    results = [
        f"({before[n][0]})" if kind == "before" else f"(SELECT {writes[n].result} FROM w{n})" for kind, n in asked
    ]
    ctes = ", ".join(f"w{n} AS ({w.statement})" for n, w in enumerate(writes))
    return f"{f'WITH {ctes} ' if ctes else ''}SELECT {', '.join(results) or 'NULL'}"
