"""A record that fails to settle every time it is read: told apart from the database or the broker being away,
and refused on its own so that the rest of its partition goes on.

Partitions are regions: one event that always fails (a defect met by its data, a value the database refuses)
would otherwise hold up every later event of its region for good. After a batch failed `ISOLATE_AFTER` times in a
row for such a reason, the consumer settles what it reads one record at a time; the record that still fails,
`ISOLATE_AFTER` times on its own, is refused (reason `unprocessable`, kept with its payload and published on the
rejection stream) in the transaction that moves its offset past it. When records keep failing alike
(`REFUSED_ALIKE`), that is no longer one bad record: no more is refused for that error.
"""

from __future__ import annotations

import asyncio

import asyncpg

from ledger.contract import InvalidEvent
from ledger.intake import Incoming

ISOLATE_AFTER = 3
# Records that failed alike (the same error, word for word) refused this often within the hour: no longer one bad
# record but a defect a kind of event meets, say after a bad release. No more is refused for that error; the
# record waits, retried with backoff, and the partition's lag grows, until the cause is fixed.
REFUSED_ALIKE = 3
ALIKE_WITHIN = 3600.0  # seconds


class Unprocessable(InvalidEvent):
    reason = "unprocessable"


def deterministic(error: BaseException | None) -> bool:
    """A failure that reading the same records again meets again: a value the database refuses (SQLSTATE class
    22, data exception, or 23, integrity constraint; or refused before it was sent) or an exception raised while
    settling them. Not the database, the network or the broker being away or slow, the process short of memory
    or stack, nor anything else the database says."""
    if error is None or not isinstance(error, Exception):
        return False
    if isinstance(error, asyncpg.DataError):  # a value asyncpg could not encode: before InterfaceError, its base
        return True
    if isinstance(error, asyncpg.PostgresError):
        return (error.sqlstate or "")[:2] in ("22", "23")
    transient = (
        OSError,
        asyncio.TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        MemoryError,
        RecursionError,
    )
    return not isinstance(error, transient)


def signature(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Refusals:
    """When records were refused, by the error they failed with."""

    def __init__(self) -> None:
        self._at: dict[str, list[float]] = {}

    def allowed(self, error: BaseException, now: float) -> bool:
        alike = signature(error)
        self._at[alike] = [t for t in self._at.get(alike, []) if now - t < ALIKE_WITHIN]
        return len(self._at[alike]) < REFUSED_ALIKE

    def add(self, error: BaseException, now: float) -> None:
        self._at.setdefault(signature(error), []).append(now)


def refuse(item: Incoming, error: BaseException, attempts: int) -> Incoming:
    """`item` as input refused without a ledger position, saying what kept failing."""
    event_id = item.event.event_id if item.event is not None else None
    detail = (
        f"settling it failed {attempts} times in a row ({signature(error)}); refused so that the rest "
        "of its partition goes on. Kept here with its payload: send it again once the cause is fixed"
    )
    item.error, item.event = Unprocessable(detail, item.raw, event_id), None
    return item
