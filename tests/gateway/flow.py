"""Driving contract files through a running stack: the events a HIS does not send are produced to the event topic
as before, each visit goes through the gateway as a HIS sends it."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.kafka.streams import publish
from tests.ledger.helpers import plain

DECIDED = (
    "SELECT count(DISTINCT event_id) FROM (SELECT event_id FROM ledger_events WHERE event_id = ANY($1::text[]) "
    "UNION ALL SELECT event_id FROM ledger_rejections WHERE event_id = ANY($1::text[]) "
    "UNION ALL SELECT event_id FROM parked_events WHERE event_id = ANY($1::text[])) AS seen"
)


async def caught_up(connection, event_ids: list[str], timeout: float = 60.0) -> None:
    """Until the ledger holds (or refused, or parked) every one of `event_ids`."""
    deadline = time.monotonic() + timeout
    while await connection.fetchval(DECIDED, event_ids) < len(set(event_ids)):
        assert time.monotonic() < deadline, "the ledger did not take the events produced"
        await asyncio.sleep(0.05)


class Producer:
    """Events the HIS does not send, produced in file order and waited for before the next visit."""

    def __init__(self, stack):
        self.stack = stack
        self.pending: list[str] = []
        self.ids: list[str] = []
        self.connection = None

    async def __aenter__(self) -> Producer:
        self.connection = await asyncpg.connect(plain(self.stack.db.app_url))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.connection.close()

    def add(self, line: str, event_id: str) -> None:
        self.pending.append(line)
        self.ids.append(event_id)

    async def flush(self) -> None:
        if self.pending:
            await publish(self.stack.settings, self.pending)
            self.pending = []
        await caught_up(self.connection, self.ids)

    async def head(self) -> tuple:
        """Where every stream of the ledger stands: its rows, each region's head, the last rejection, outbox
        record and parked arrival, the projections' states."""
        return tuple(
            await self.connection.fetchrow(
                "SELECT (SELECT count(*) FROM ledger_events), (SELECT string_agg(region || ':' || seq || ':' || "
                "encode(hash, 'hex'), ',' ORDER BY seq) FROM ledger_events WHERE seq IN "
                "(SELECT max(seq) FROM ledger_events GROUP BY region)), "
                "(SELECT max(rejection_id) FROM ledger_rejections), (SELECT max(position) FROM outbox), "
                "(SELECT max(arrival) FROM parked_events), (SELECT count(*) FROM ledger_settlements), "
                "(SELECT md5(string_agg(state::text, ',' ORDER BY region, member_id)) FROM member_state)"
            )
        )
