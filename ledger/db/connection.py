"""The driver connection every query of this package runs on: asyncpg's, lent by an asyncpg pool (the service's,
`db.connect`; the console's; the reporting service's). asyncpg ships no type information, so mypy takes both for
`Any`; the name says what is meant."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from asyncpg import Connection
    from asyncpg.pool import PoolConnectionProxy

Raw: TypeAlias = "Connection | PoolConnectionProxy"
