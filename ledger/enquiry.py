"""What a counter may ask the ledger without changing it: how a visit would settle now (pre-settlement), what
became of events it sent, a visit's settlement, a facility's settlements of a period, a member's state.

Nothing here writes: a pre-settlement loads the member's state into a book of its own and settles the visit there,
as the live pipeline would settle it next, and throws the book away."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date
from typing import Any

from policies.book import Book
from policies.engine import Engine
from policies.member import MemberState
from policies.outputs import Settlement
from policies.parameters import parse_parameters
from policies.recorded import recorded_parameters
from policies.registry import PolicyRegistry

from .chain import text_digest
from .codec import state_from_json
from .contract import EventBase
from .db import lookups
from .db.adoptions import last_adopted
from .db.connect import Pool, close_pool, lent, service_pool
from .db.connection import Raw
from .db.event_store import reading
from .db.outbox import CHANNEL
from .db.projection_store import load_book
from .db.recorder import LIVE
from .db.server import Database
from .records import settlement_wire

# A pre-settlement has no ledger position: the one its event will have is known only once it is appended.
UNSEQUENCED = 0


class LedgerReader:
    """The ledger opened for reading alone, as a role that may write nothing in it (the gateway's): its
    connections, and the parameter set a pre-settlement settles under until the ledger has adopted one (recorded
    as `LedgerService` records it). It has no way to append."""

    def __init__(
        self, db: Database, parameters_text: str = "", parameters_source: str | None = None, wait: float | None = None
    ):
        """`wait`: seconds a question waits at most for one of its connections (`db.connect.lent`)."""
        self.db = db
        self.wait = wait
        recorded = recorded_parameters(parameters_text, parameters_source)
        self.digest = text_digest(recorded)
        self.registry = PolicyRegistry(parse_parameters(recorded, parameters_source))
        self._pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        """Its connections, once opened (`async with`)."""
        if self._pool is None:
            raise RuntimeError("the ledger is not open for reading: enter the LedgerReader first")
        return self._pool

    async def __aenter__(self) -> LedgerReader:
        from .db.recorder import PostgresRecorder
        from .service import require_current_projections

        self._pool = pool = await service_pool(self.db, size=4)
        try:  # what it quotes, the ledger settles on: not member states of an earlier release
            await require_current_projections(PostgresRecorder(pool))
        except BaseException:
            await close_pool(pool)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await close_pool(self._pool)


class Enquiry:
    """Read-only questions to the ledger a `LedgerReader` has opened."""

    def __init__(self, service: LedgerReader):
        self.service = service
        self._registries: dict[str, PolicyRegistry] = {service.digest: service.registry}

    def _reading(self) -> AbstractAsyncContextManager[Raw]:
        """A connection of the reader's pool, waited for no longer than the reader was told."""
        return reading(self.service.pool, self.service.wait)

    async def presettle(self, event: EventBase) -> dict[str, Any]:
        """The settlement record (`records.settlement_wire`) `event`, a `visit.submitted`, would get if the ledger
        settled it next, under the parameter set the ledger adopted last; `Rejected` as the ledger would refuse it
        (a member not enrolled is refused here: the live ledger would park the visit). Writes nothing."""
        async with self._reading() as raw:
            registry = await self._adopted(raw, event.region)
            book: Book = await load_book(raw, LIVE, registry, [event])
        outputs = Engine(book=book).apply(event, UNSEQUENCED)
        settlement = next(output for output in outputs if isinstance(output, Settlement))
        return settlement_wire(settlement)

    async def _adopted(self, raw: Raw, region: str) -> PolicyRegistry:
        """The registry of the parameter set the region's stream settles under now: the one it adopted last (the
        writer that appends next adopts its own first, if it is another); before streams, the ledger's last."""
        digest = await last_adopted(raw, region) or await last_adopted(raw) or self.service.digest
        registry = self._registries.get(digest)
        if registry is None:
            content = await lookups.parameters_content(raw, digest)
            registry = PolicyRegistry(parse_parameters(content or ""))
            self._registries[digest] = registry
        return registry

    async def outcomes(self, event_ids: list[str]) -> dict[str, tuple[str, dict | None]]:
        """See `db.lookups.outcomes`."""
        async with self._reading() as raw:
            return await lookups.outcomes(raw, event_ids)

    async def visit(
        self, region: str, visit_id: str | None = None, settlement_id: str | None = None
    ) -> tuple[dict, str, dict | None] | None:
        """(settlement, facility id, reversal) of a visit, by its id or its settlement's (`db.lookups`)."""
        async with self._reading() as raw:
            return await lookups.visit_settlements(raw, region, visit_id, settlement_id)

    async def facility_settlements(self, facility_id: str, first: date, last: date) -> list[dict]:
        async with self._reading() as raw:
            return await lookups.facility_settlements(raw, facility_id, first, last)

    async def member(self, region: str, member_id: str) -> MemberState | None:
        async with self._reading() as raw:
            state = await lookups.member_state(raw, region, member_id)
        return None if state is None else state_from_json(state)

    @asynccontextmanager
    async def commits(self, heard: Callable[[], None], lost: Callable[[], None]) -> AsyncIterator[None]:
        """Calls `heard` each time any writer commits to the ledger, while the context is open (one connection
        held, listening on the outbox channel every writing transaction notifies), and `lost` if that connection
        closes meanwhile."""
        async with lent(self.service.pool, self.service.wait) as raw:

            def notified(_connection: Raw, _pid: int, _channel: str, _payload: str) -> None:
                heard()

            def closed(_connection: Raw) -> None:
                lost()

            raw.add_termination_listener(closed)
            await raw.add_listener(CHANNEL, notified)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a connection that closed is detached from the pool already
                    raw.remove_termination_listener(closed)  # else it goes on to other borrowers
                    await raw.remove_listener(CHANNEL, notified)
