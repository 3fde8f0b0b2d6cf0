"""Running the durable ledger from tests: ingest lines, read tables, replay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from ledger.adoption import IS_ADOPTION
from ledger.db.server import MAINTENANCE_ROLE, Database, with_user
from ledger.db.verification import JSON_TEXT
from ledger.intake import from_lines
from ledger.replay import Replayer
from ledger.service import LedgerService

EXAMPLES = Path(__file__).parents[2] / "examples"
# The ledger's rows of producers' events, without medledger's own parameter-set adoptions (`ledger.adoption`).
PRODUCED = f"ledger_events WHERE NOT ({IS_ADOPTION})"
IM_PARAMETERS = (EXAMPLES / "params/150000-illustrative.toml").read_text(encoding="utf-8")


def refusing_outbox(add_outbox, refuse=lambda: True):
    """Stands in for `ledger.db.recorder.add_outbox`: while `refuse()` says so, the batch also carries a write the
    database refuses (an outbox row without a stream). A small batch's one statement fails inside PostgreSQL; a
    large batch's fails after its events and ledger rows have been copied in."""

    def add(writes, rows):
        add_outbox(writes, rows)
        if refuse():
            writes.add("INSERT INTO outbox (stream, value) VALUES (NULL, 'refused')")

    return add


async def until_waiting(connection, what: str, query: str = "SELECT count(*) FROM pg_locks WHERE NOT granted"):
    """Return once `query` finds a session waiting for a lock (by default any lock): `what` has got that far."""
    for _ in range(200):
        if await connection.fetchval(query):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not wait")


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def ingest(
    db: Database,
    lines,
    parameters: str = "",
    batch_size: int = 50,
    now: datetime | None = None,
    park_ttl: timedelta = timedelta(days=30),
    name: str = "test",
    prepare_schema: bool = True,
    structs: bool = True,
):
    """`structs`: the events the fast decoder takes are read as its Structs, as `medledger ingest` reads them."""
    published: list[dict] = []

    async def run():
        clock = (lambda: now) if now else (lambda: datetime.now(UTC))
        async with LedgerService(
            db, parameters, batch_size=batch_size, park_ttl=park_ttl, clock=clock, prepare_schema=prepare_schema
        ) as service:
            return await service.ingest(from_lines(lines, name, structs=structs), published.extend)

    stats = asyncio.run(run())
    return stats, published


def sweep(db: Database, now: datetime, park_ttl: timedelta):
    published: list[dict] = []

    async def run():
        async with LedgerService(db, park_ttl=park_ttl, clock=lambda: now) as service:
            return await service.sweep(on_published=published.extend)

    return asyncio.run(run()), published


def streams(db: Database) -> dict[str, list]:
    """Each region's ledger rows (seq, prev_hash, hash, event_type, params_digest) in its stream's order (the rows
    written before streams aside)."""
    found: dict[str, list] = {}
    for row in fetch(
        db,
        "SELECT region, seq, prev_hash, hash, event_type, params_digest FROM ledger_events "
        f"WHERE seq >= {1 << 40} ORDER BY seq",
    ):
        found.setdefault(row["region"], []).append(row)
    return found


def gap_free(db: Database) -> dict[str, int]:
    """Asserts that every region's stream is numbered 1, 2, 3, ... from its base, each row chained to the one
    before from the stream's genesis; the rows in each."""
    from ledger.streams import genesis, position

    anchor_seq, anchor_hash = fetch(db, "SELECT history_seq, history_hash FROM ledger_anchor")[0]
    counts = {}
    for region, rows in streams(db).items():
        assert [position(r["seq"]) for r in rows] == list(range(1, len(rows) + 1)), region
        assert len({r["seq"] >> 40 for r in rows}) == 1, region
        assert rows[0]["prev_hash"] == genesis(region, anchor_seq, bytes(anchor_hash)), region
        assert all(after["prev_hash"] == before["hash"] for before, after in zip(rows, rows[1:])), region
        counts[region] = len(rows)
    return counts


def fetch(db: Database, query: str, *args, owner: bool = False):
    async def run():
        connection = await asyncpg.connect(plain(db.owner_url if owner else db.app_url))
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def execute(db: Database, query: str, *args, owner: bool = False):
    async def run():
        connection = await asyncpg.connect(plain(db.owner_url if owner else db.app_url))
        try:
            return await connection.execute(query, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def unguarded(db: Database, table: str, statement: str, *args) -> None:
    """`statement` run by the database's owner with `table`'s append-only guards off, as a forger would."""
    execute(db, f"ALTER TABLE {table} DISABLE TRIGGER USER", owner=True)
    try:
        execute(db, statement, *args, owner=True)
    finally:
        execute(db, f"ALTER TABLE {table} ENABLE TRIGGER USER", owner=True)


def unreferenced(db: Database, *statements: tuple) -> None:
    """Each (statement, *args) run by the database's owner in one session with no trigger fired and no reference
    checked (`session_replication_role = replica`), as a forger who put the foreign keys out of the way would."""

    async def run():
        connection = await asyncpg.connect(plain(db.owner_url))
        try:
            await connection.execute("SET session_replication_role = replica")
            for statement, *args in statements:
                await connection.execute(statement, *args)
        finally:
            await connection.close()

    asyncio.run(run())


def verify(db: Database, batch_size: int = 40):
    return asyncio.run(Replayer(db, batch_size=batch_size).verify())


def example_lines(*names: str) -> list[str]:
    lines = []
    for name in names:
        lines.extend(line for line in (EXAMPLES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line)
    return lines


def records(published: list[dict], key: str) -> list[dict]:
    return [record for record in published if key in record]


def json_rows(rows, column: str = "record") -> list[dict]:
    return [json.loads(r[column]) if isinstance(r[column], str) else r[column] for r in rows]


def waiting(db: Database) -> list[str]:
    """Event ids still waiting for an enrolment, in arrival order."""
    return [
        r[0]
        for r in fetch(
            db,
            "SELECT p.event_id FROM parked_events p WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger_events e WHERE e.event_id = p.event_id) ORDER BY arrival",
        )
    ]


# What this release writes beside the rows a release before partitions wrote (migrations 0012 and 0014 add it): to
# write a ledger as that release did, the writer's extra rows and columns are given a place, dropped once it has
# written.
def records_as(kind: str, tables: Iterable[str] | None = None) -> list[str]:
    """The statements that make the ledger's record columns (of `tables`, every one's when None) `kind`: `jsonb`,
    as before 0016 (the server's parse of each record, kept as its value), or `text` (from jsonb, the server's text
    of each value, as 0016 leaves the rows written before it)."""
    return [
        f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind} USING {column}::{kind}"
        for table, column in sorted(JSON_TEXT)
        if tables is None or table in tables
    ]


BEFORE_PARTITIONS = (
    "CREATE TABLE ledger_event_ids (event_id text PRIMARY KEY, region text NOT NULL)",
    "GRANT SELECT, INSERT ON ledger_event_ids TO medledger_app",
    "ALTER TABLE ledger_rejections ADD COLUMN region text",
    "ALTER TABLE ledger_signatures ADD COLUMN region text",
    "ALTER TABLE member_state ADD COLUMN params_digest text",
    *records_as("text"),
)
AS_BEFORE_PARTITIONS = (
    "DROP TABLE ledger_event_ids",
    "ALTER TABLE ledger_rejections DROP COLUMN region",
    "ALTER TABLE ledger_signatures DROP COLUMN region",
    "ALTER TABLE member_state DROP COLUMN params_digest",
    *records_as("jsonb"),
)


@contextmanager
def written_before_partitions(db: Database) -> Iterator[None]:
    """Writes on a schema before 0012 leave the rows that schema holds, no more."""
    for statement in BEFORE_PARTITIONS:
        execute(db, statement, owner=True)
    try:
        yield
    finally:
        for statement in AS_BEFORE_PARTITIONS:
            execute(db, statement, owner=True)


def as_maintenance(db: Database) -> Database:
    """`db` with the maintenance role (`medledger_maintenance`, no password: the test server trusts its socket) as
    the one its commands connect as."""
    return Database(db.owner_url, with_user(db.owner_url, MAINTENANCE_ROLE, None))
