"""A downstream reporting consumer: the settlement topic into tables of its own, and the monthly figures per
region that a fund manager reconciles against the ledger.

It knows nothing of the ledger but the topic and the ledger's public key. Records arrive at least once, so each is
stored under its `settlement_id` and a repeat changes nothing; offsets are committed to Kafka after the rows are.

Anyone who can write to the topic could otherwise write the report: settlement ids are predictable and the first
row of an id wins. So every record must carry the ledger's signature (`ledger.authority.LedgerSigner`, made by the
relay); one that does not verify, or does not parse as a settlement, goes to `reporting.dead_letters` with why,
once (keyed by its topic, partition and offset), and is never read again; the rest of its batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from faststream import FastStream
from faststream.middlewares import AckPolicy

from consumers.broker import make_broker
from consumers.settings import Settings
from consumers.topics import coordinator_ready
from ledger.authority import LedgerVerifier
from ledger.db.connect import lent
from ledger.db.server import dsn

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

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
    (
        "SELECT to_regclass('reporting.dead_letters') IS NULL",
        """CREATE TABLE IF NOT EXISTS reporting.dead_letters (
        topic       text NOT NULL,
        partition   integer NOT NULL,
        "offset"    bigint NOT NULL,
        reason      text NOT NULL,
        detail      text NOT NULL,
        value       bytea,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, partition, "offset")
    )""",
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


DEAD_COLUMNS = ("topic", "partition", "offset", "reason", "detail", "value")


class Refused(ValueError):
    """A record the report does not take: `reason` is `unsigned` (no valid signature of the ledger) or
    `unreadable` (signed, and still not a record this report reads)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def row_of(record: dict) -> tuple | None:
    """A settlement or reversal as a row; movements and incentive evaluations are not part of this report."""
    if not isinstance(record, dict):
        raise TypeError("a record is a JSON object")
    if "settlement_id" not in record:
        return None
    level = record.get("facility_level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool) or not -(2**31) <= level < 2**31):
        raise ValueError(f"facility_level: not a level: {level!r}")
    day = date.fromisoformat(record["visit_date"])
    return (
        _text(record, "settlement_id"),
        _text(record, "region"),
        day.replace(day=1),
        day,
        level,
        _text(record, "fund_pool"),
        None if record.get("reverses") is None else _text(record, "reverses"),
        Decimal(record["total_amount"]),
        Decimal(record["fund_paid"]),
        Decimal(record["account_paid"]),
        Decimal(record["cash_paid"]),
    )


def _text(record: dict, name: str) -> str:
    value = record[name]
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(f"{name}: not text a table can keep")
    return value


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
        self.url = dsn(url)
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> ReportingStore:
        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=2)
        async with lent(self.pool) as connection:
            for needed, statement in SCHEMA:
                if await connection.fetchval(needed):
                    await connection.execute(statement)
        return self

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    @property
    def _opened(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("the reporting store is not open")
        return self.pool

    async def add(self, records: list[dict], dead: Sequence[tuple] = ()) -> int:
        """Settlement records, and `dead` letters (DEAD_COLUMNS rows), in one transaction."""
        rows = [row for row in map(row_of, records) if row is not None]
        if not rows and not dead:
            return 0
        async with lent(self._opened) as connection, connection.transaction():
            if dead:
                await connection.executemany(
                    'INSERT INTO reporting.dead_letters (topic, partition, "offset", reason, detail, value) '
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    dead,
                )
            if not rows:
                return 0
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

    async def _fetch(self, query: str, *args: Any) -> list:
        async with lent(self._opened) as connection:
            return await connection.fetch(query, *args)

    async def month(self, region: str, month: date) -> list[Line]:
        rows = await self._fetch(
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
        rows = await self._fetch(
            "SELECT region, month, pool, sum(fund_paid), count(*) FILTER (WHERE reverses IS NULL), "
            "count(*) FILTER (WHERE reverses IS NOT NULL) FROM reporting.settlements GROUP BY region, month, pool"
        )
        return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}

    async def dead_letters(self) -> dict[str, int]:
        """How many records were refused, by reason."""
        rows = await self._fetch("SELECT reason, count(*) FROM reporting.dead_letters GROUP BY reason")
        return {row[0]: row[1] for row in rows}


def sort_records(raw_records: Iterable[ConsumerRecord], verifier: LedgerVerifier) -> tuple[list[dict], list[tuple]]:
    """Kafka records as (settlement records to store, dead letters): each must carry the ledger's signature and
    parse as a record of the settlement topic."""
    taken: list[dict] = []
    dead: list[tuple] = []
    for record in raw_records:
        value = record.value if record.value is not None else b""
        try:
            problem = verifier.problem(record.headers, value)
            if problem is not None:
                raise Refused("unsigned", problem)
            try:
                parsed = orjson.loads(value)
                row_of(parsed)
            except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as error:
                raise Refused("unreadable", f"{type(error).__name__}: {error}") from error
        except Refused as refused:
            log.warning(
                "record refused: %s",
                refused.detail,
                extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
            )
            dead.append((record.topic, record.partition, record.offset, refused.reason, refused.detail, value))
            continue
        taken.append(parsed)
    return taken, dead


class Reporting:
    """`medledger reporting`: the consumer as a FastStream application."""

    def __init__(self, settings: Settings, store: ReportingStore, verifier: LedgerVerifier | None = None):
        if verifier is None:
            if settings.ledger_public_key is None:
                raise ValueError(
                    "reporting needs MEDLEDGER_LEDGER_PUBLIC_KEY: the key the ledger signs its records with"
                )
            verifier = LedgerVerifier.load(settings.ledger_public_key)
        self.settings, self.store, self.verifier = settings, store, verifier
        self.refused = 0
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
            decoder=_records,
            title="reporting",
            description="Settlements and reversals into the reporting tables, deduplicated by settlement_id; what "
            "the ledger did not sign, or does not parse, into reporting.dead_letters.",
        )
        subscriber(self.receive)
        self.app = FastStream(self.broker, logger=log)
        self.app.on_startup(self.store.open)
        self.app.on_startup(self._coordinated)
        self.app.after_shutdown(self.store.close)

    async def _coordinated(self) -> None:
        await coordinator_ready(self.settings, self.settings.reporting_group_id)

    # `records` (the batch's ConsumerRecords, `_records`) is typed Any: FastStream documents a handler's parameter
    # as the message payload, and a record's settlement is verified here before it is parsed.
    async def receive(self, records: Any) -> None:
        taken, dead = sort_records(records, self.verifier)
        added = await self.store.add(taken, dead)
        self.refused += len(dead)
        log.debug("reporting batch", extra={"records": len(records), "added": added, "refused": len(dead)})


async def _records(message: Any) -> list[ConsumerRecord]:
    """The Kafka records as they are: each is verified before it is parsed."""
    return list(message.raw_message)
