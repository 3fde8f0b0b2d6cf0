"""A downstream reporting consumer: the settlement topic into tables of its own, and the monthly figures per
region that a fund manager reconciles against the ledger.

It knows nothing of the ledger but the topic. Records arrive at least once, so each is stored under its
`settlement_id` and a repeat changes nothing; offsets are committed to Kafka after the rows are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg
import orjson
from faststream import FastStream
from faststream.middlewares import AckPolicy

from .broker import make_broker
from .settings import Settings

log = logging.getLogger("medledger.reporting")

AMOUNTS = ("total_amount", "fund_paid", "account_paid", "cash_paid")
# (whether it is needed, the statement): each only where it is. The reporting role may create in its schema, but
# in the ledger's database the schema, and a table made before that role existed, are the owner's
# (`ledger/db/migrations`, 0005). IF NOT EXISTS still: another instance may be starting at the same time.
SCHEMA = (
    ("SELECT to_regnamespace('reporting') IS NULL", "CREATE SCHEMA IF NOT EXISTS reporting"),
    (
        "SELECT to_regclass('reporting.settlements') IS NULL",
        """CREATE TABLE IF NOT EXISTS reporting.settlements (
        settlement_id  text PRIMARY KEY,
        region         text NOT NULL,
        month          date NOT NULL,
        visit_date     date NOT NULL,
        facility_level integer,
        pool           text NOT NULL,
        reverses       text,
        total_amount   numeric NOT NULL,
        fund_paid      numeric NOT NULL,
        account_paid   numeric NOT NULL,
        cash_paid      numeric NOT NULL,
        received_at    timestamptz NOT NULL DEFAULT now()
    )""",
    ),
    (
        "SELECT to_regclass('reporting.settlements_region_month') IS NULL",
        "CREATE INDEX IF NOT EXISTS settlements_region_month ON reporting.settlements (region, month)",
    ),
    (  # a table made when amounts had 16 digits at most: every amount the contract accepts fits now (no rewrite)
        "SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema = 'reporting' "
        "AND table_name = 'settlements' AND data_type = 'numeric' AND numeric_precision IS NOT NULL)",
        "ALTER TABLE reporting.settlements " + ", ".join(f"ALTER COLUMN {c} TYPE numeric" for c in AMOUNTS),
    ),
)
COLUMNS = (
    "settlement_id",
    "region",
    "month",
    "visit_date",
    "facility_level",
    "pool",
    "reverses",
    "total_amount",
    "fund_paid",
    "account_paid",
    "cash_paid",
)


def row_of(record: dict) -> tuple | None:
    """A settlement or reversal as a row; movements and incentive evaluations are not part of this report."""
    if "settlement_id" not in record:
        return None
    day = date.fromisoformat(record["visit_date"])
    return (
        record["settlement_id"],
        record["region"],
        day.replace(day=1),
        day,
        record.get("facility_level"),
        record["fund_pool"],
        record.get("reverses"),
        Decimal(record["total_amount"]),
        Decimal(record["fund_paid"]),
        Decimal(record["account_paid"]),
        Decimal(record["cash_paid"]),
    )


@dataclass(frozen=True)
class Line:
    facility_level: int | None
    visits: int
    reversals: int
    total_amount: Decimal
    fund_general: Decimal
    fund_chronic: Decimal
    account_paid: Decimal
    cash_paid: Decimal


class ReportingStore:
    def __init__(self, url: str):
        self.url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> ReportingStore:
        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=2)
        async with self.pool.acquire() as connection:
            for needed, statement in SCHEMA:
                if await connection.fetchval(needed):
                    await connection.execute(statement)
        return self

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def add(self, records: list[dict]) -> int:
        rows = [row for row in map(row_of, records) if row is not None]
        if not rows:
            return 0
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS incoming (LIKE reporting.settlements INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            await connection.copy_records_to_table("incoming", records=rows, columns=COLUMNS)
            status = await connection.execute(
                f"INSERT INTO reporting.settlements ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM incoming "
                "ON CONFLICT (settlement_id) DO NOTHING"
            )
        return int(status.split()[-1])

    async def month(self, region: str, month: date) -> list[Line]:
        rows = await self.pool.fetch(
            """SELECT facility_level,
                      count(*) FILTER (WHERE reverses IS NULL) AS visits,
                      count(*) FILTER (WHERE reverses IS NOT NULL) AS reversals,
                      coalesce(sum(total_amount), 0) AS total_amount,
                      coalesce(sum(fund_paid) FILTER (WHERE pool = 'general'), 0) AS fund_general,
                      coalesce(sum(fund_paid) FILTER (WHERE pool = 'chronic'), 0) AS fund_chronic,
                      coalesce(sum(account_paid), 0) AS account_paid,
                      coalesce(sum(cash_paid), 0) AS cash_paid
               FROM reporting.settlements WHERE region = $1 AND month = $2
               GROUP BY facility_level ORDER BY facility_level NULLS LAST""",
            region,
            month,
        )
        return [Line(**dict(row)) for row in rows]

    async def fund_by_pool(self) -> dict[tuple[str, date, str], tuple[Decimal, int, int]]:
        """(region, month, pool) → fund paid, settlements, reversals: the ledger's fund_totals, as seen here."""
        rows = await self.pool.fetch(
            "SELECT region, month, pool, sum(fund_paid), count(*) FILTER (WHERE reverses IS NULL), "
            "count(*) FILTER (WHERE reverses IS NOT NULL) FROM reporting.settlements GROUP BY region, month, pool"
        )
        return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


class Reporting:
    """`medledger reporting`: the consumer as a FastStream application."""

    def __init__(self, settings: Settings, store: ReportingStore):
        self.settings, self.store = settings, store
        self.broker = make_broker(settings, consumer_only=True)
        subscriber = self.broker.subscriber(
            settings.settlements_topic,
            group_id=settings.reporting_group_id,
            batch=True,
            max_records=1_000,
            batch_timeout_ms=100,
            auto_offset_reset="earliest",
            # Offsets are committed once the rows are in; a failed batch is sought back to and read again.
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_values,
            title="reporting",
            description="Settlements and reversals into the reporting tables, deduplicated by settlement_id.",
        )
        subscriber(self.receive)
        self.app = FastStream(self.broker, logger=log)
        self.app.on_startup(self.store.open)
        self.app.after_shutdown(self.store.close)

    async def receive(self, records: list[dict]) -> None:
        added = await self.store.add(records)
        log.debug("reporting batch", extra={"records": len(records), "added": added})


async def _values(message) -> list[dict]:
    return [orjson.loads(record.value) for record in message.raw_message]
