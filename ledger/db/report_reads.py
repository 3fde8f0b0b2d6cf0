"""What the statements and traces people read are built from (`ledger.reports`): a member's state, year, visits,
movements and incentives, a settlement with its event, and the fund's month."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from . import fund_report
from .adoptions import last_adoption
from .connection import Raw
from .projection_store import as_json


class PostgresReportReads:
    """The report queries (`recorder.ReportReads`), on an asyncpg connection."""

    def __init__(self, raw: Raw) -> None:
        self.raw = raw

    async def member_states(self, member_id: str, region: str | None) -> list[tuple[str, dict]]:
        """(region, state JSON) of the member in each region it is known in (or in `region`), by region."""
        query = "SELECT region, state FROM member_state WHERE member_id = $1"
        args: list[Any] = [member_id]
        if region:
            query += " AND region = $2"
            args.append(region)
        return [
            (row_region, as_json(state))
            for row_region, state in await self.raw.fetch(query + " ORDER BY region", *args)
        ]

    async def latest_visit(self, region: str, member_id: str) -> date | None:
        return await self.raw.fetchval(
            "SELECT max(visit_date) FROM ledger_settlements WHERE region = $1 AND member_id = $2", region, member_id
        )

    async def member_parameters(self, region: str, member_id: str) -> str | None:
        """The text of the parameter set the member's state was last settled under."""
        return await self.raw.fetchval(
            "SELECT p.content FROM member_state m JOIN parameter_sets p ON p.digest = m.params_digest "
            "WHERE m.region = $1 AND m.member_id = $2",
            region,
            member_id,
        )

    async def member_year(self, region: str, member_id: str, year: int) -> dict | None:
        row = await self.raw.fetchrow(
            "SELECT * FROM member_year WHERE region = $1 AND member_id = $2 AND year = $3", region, member_id, year
        )
        return dict(row) if row else None

    async def settlements(self, region: str, member_id: str, first: date, last: date) -> list[dict]:
        """The member's settlement records of visits from `first` to `last`, in ledger order."""
        return [
            as_json(r[0])
            for r in await self.raw.fetch(
                "SELECT record FROM ledger_settlements WHERE region = $1 AND member_id = $2 "
                "AND visit_date BETWEEN $3 AND $4 ORDER BY seq, settlement_id",
                region,
                member_id,
                first,
                last,
            )
        ]

    async def movements(self, region: str, member_id: str, since: datetime, until: datetime) -> list[dict]:
        """The member's account movement records of events from `since` (up to `until`), each with the time of its
        event as `occurred_at`, in ledger order."""
        return [
            {**as_json(r[0]), "occurred_at": r[1]}
            for r in await self.raw.fetch(
                "SELECT m.record, e.occurred_at FROM ledger_movements m "
                "JOIN ledger_events e ON e.seq = m.seq AND e.region = m.region "
                "WHERE m.region = $1 AND m.member_id = $2 AND e.occurred_at >= $3 AND e.occurred_at < $4 "
                "ORDER BY m.seq, m.movement_id",
                region,
                member_id,
                since,
                until,
            )
        ]

    async def incentives(self, region: str, member_id: str) -> list[dict]:
        return [
            as_json(r[0])
            for r in await self.raw.fetch(
                "SELECT record FROM ledger_incentives WHERE region = $1 AND member_id = $2 ORDER BY seq",
                region,
                member_id,
            )
        ]

    async def settlement_trace(self, settlement_id: str) -> dict | None:
        """The settlement's record and deltas (decoded), with its event's position, id, payload, parameter digest,
        hash, arrival time and source."""
        row = await self.raw.fetchrow(
            "SELECT s.record, s.deltas, s.seq, e.event_id, e.payload, e.params_digest, e.hash, e.recorded_at, "
            "e.source FROM ledger_settlements s JOIN ledger_events e ON e.seq = s.seq AND e.region = s.region "
            "WHERE s.settlement_id = $1",
            settlement_id,
        )
        if row is None:
            return None
        found = dict(row)
        found["record"], found["deltas"] = as_json(row["record"]), as_json(row["deltas"])
        return found

    async def settlement(self, settlement_id: str) -> dict | None:
        """A settlement's record."""
        record = await self.raw.fetchval(
            "SELECT record FROM ledger_settlements WHERE settlement_id = $1", settlement_id
        )
        return None if record is None else as_json(record)

    async def parameters(self, digest: str) -> str | None:
        return await self.raw.fetchval("SELECT content FROM parameter_sets WHERE digest = $1", digest)

    async def last_adoption(self, before: int | None = None) -> tuple[int, str] | None:
        return await last_adoption(self.raw, before)

    async def month_by_facility(self, region: str, first: date) -> list[dict]:
        return await fund_report.month_by_facility(self.raw, region, first)

    async def month_by_level(self, region: str, first: date) -> list[dict]:
        return await fund_report.month_by_level(self.raw, region, first)
