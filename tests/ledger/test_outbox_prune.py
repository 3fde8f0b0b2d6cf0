"""`medledger outbox prune`: the outbox's records every relay has published, recorded before the retention, go;
nothing unpublished, nothing younger, and the relay's own position stay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.db.outbox import Gaps, pending, prune
from ledger.db.server import Database
from tests.ledger.helpers import EXAMPLES, as_maintenance, execute, fetch, ingest, plain

OUTBOX = "SELECT position, stream, key, value FROM outbox ORDER BY position"


@pytest.fixture
def outbox(database, monkeypatch):
    """A ledger of Nanjing's example, whose outbox holds its records; commands connect as the maintenance role."""
    ingest(database, (EXAMPLES / "nanjing.jsonl").read_text().splitlines())
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDLEDGER_APP_DATABASE_URL", database.app_url)
    monkeypatch.setenv("MEDLEDGER_MAINTENANCE_DATABASE_URL", as_maintenance(database).app_url)
    rows = fetch(database, OUTBOX)
    assert len(rows) > 60 and [row[0] for row in rows] == list(range(1, len(rows) + 1))
    return rows


def _published(database: Database, **relays: int) -> None:
    for relay, position in relays.items():
        execute(database, "INSERT INTO outbox_relay (relay, position) VALUES ($1, $2)", relay, position)


def _age(database: Database, through: int, days: int) -> None:
    execute(
        database,
        f"UPDATE outbox SET recorded_at = now() - interval '{days} days' WHERE position <= $1",
        through,
        owner=True,
    )


def _prune(*args: str):
    result = CliRunner().invoke(app, ["outbox", "prune", *args])
    assert result.exit_code == 0, result.output
    return result.stderr


def test_prune_takes_only_records_every_relay_published_and_recorded_before_the_retention(database, outbox):
    _published(database, medledger=40, other=30)  # the lower of the two bounds it
    _age(database, 25, days=10)
    assert "would prune 25 outbox record(s) through position 25" in _prune("--dry-run")
    assert fetch(database, OUTBOX) == outbox
    said = _prune()
    assert (
        f"pruned 25 outbox record(s) through position 25 (published through position 30, newest {len(outbox)})" in said
    )
    assert fetch(database, OUTBOX) == outbox[25:]
    assert "nothing to prune" in _prune()  # what is left is younger than seven days
    _age(database, len(outbox), days=10)  # now all of it is old
    assert "pruned 4 outbox record(s) through position 29" in _prune()  # the relays' position itself stays
    assert fetch(database, OUTBOX) == outbox[29:]
    assert "nothing to prune" in _prune("--keep-days", "0")


def test_a_young_record_stops_the_prune_where_it_is(database, outbox):
    _published(database, medledger=50)
    _age(database, 50, days=3)
    execute(database, "UPDATE outbox SET recorded_at = now() WHERE position = 18", owner=True)
    assert "pruned 17 outbox record(s) through position 17" in _prune("--keep-days", "2")
    assert fetch(database, OUTBOX) == outbox[17:]


def test_nothing_is_pruned_before_a_relay_has_published(database, outbox):
    _age(database, len(outbox), days=100)
    assert "no relay has published from the outbox yet" in _prune("--keep-days", "0")
    assert fetch(database, OUTBOX) == outbox


def test_prune_deletes_in_chunks_and_the_relay_reads_on_from_its_position(database, outbox):
    _published(database, medledger=45)
    _age(database, len(outbox), days=10)

    async def run():
        connection = await asyncpg.connect(plain(as_maintenance(database).app_url))
        try:
            deleted = await prune(connection, datetime.now(UTC) - timedelta(days=1), chunk=4)
            rest = await pending(connection, 45, 1_000, Gaps())
            return deleted, rest
        finally:
            await connection.close()

    deleted, rest = asyncio.run(run())
    assert (deleted.records, deleted.through, deleted.published, deleted.newest) == (44, 44, 45, len(outbox))
    assert fetch(database, OUTBOX) == outbox[44:]
    assert [(p.position, p.stream, p.key, p.value) for p in rest] == [tuple(row) for row in outbox[45:]]
    ingest(database, (EXAMPLES / "weihai.jsonl").read_text().splitlines())  # writers go on after a prune
    assert fetch(database, "SELECT min(position), max(position) FROM outbox")[0][0] == 45


def test_only_the_maintenance_role_deletes_from_the_outbox(database, outbox, monkeypatch):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        execute(database, "DELETE FROM outbox WHERE position = 1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        execute(as_maintenance(database), "UPDATE outbox SET value = 'x' WHERE position = 1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        execute(as_maintenance(database), "UPDATE outbox_relay SET position = 1000000")
    monkeypatch.delenv("MEDLEDGER_MAINTENANCE_DATABASE_URL")
    result = CliRunner().invoke(app, ["outbox", "prune"])
    assert result.exit_code == 2 and "pruning the outbox needs MEDLEDGER_MAINTENANCE_DATABASE_URL" in result.stderr
    assert fetch(database, OUTBOX) == outbox


def test_the_database_refuses_to_delete_a_record_not_yet_published(database, outbox):
    maintenance = as_maintenance(database)
    with pytest.raises(asyncpg.RaiseError, match="outbox record 1 is not published yet"):
        execute(maintenance, "DELETE FROM outbox WHERE position = 1")  # no relay has published anything
    _published(database, medledger=20, other=30)
    with pytest.raises(asyncpg.RaiseError, match="outbox record 21 is not published yet"):
        execute(maintenance, "DELETE FROM outbox WHERE position BETWEEN 3 AND 21")
    with pytest.raises(asyncpg.RaiseError, match="is not published yet"):
        execute(database, "DELETE FROM outbox", owner=True)  # the owner too
    with pytest.raises(asyncpg.RaiseError, match="outbox record 20 is the last one published and is kept"):
        execute(maintenance, "DELETE FROM outbox WHERE position BETWEEN 3 AND 20")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="TRUNCATE on outbox is refused"):
        execute(database, "TRUNCATE outbox", owner=True)
    assert fetch(database, OUTBOX) == outbox
    assert execute(maintenance, "DELETE FROM outbox WHERE position BETWEEN 3 AND 19") == "DELETE 17"
    assert execute(maintenance, "DELETE FROM outbox WHERE position = 3") == "DELETE 0"  # nothing deleted, nothing said


def test_a_temporary_table_cannot_stand_in_for_the_relays_position(database, outbox):
    async def run():
        connection = await asyncpg.connect(plain(as_maintenance(database).app_url))
        try:
            await connection.execute("CREATE TEMPORARY TABLE outbox_relay (relay text, position bigint)")
            await connection.execute("INSERT INTO outbox_relay VALUES ('mine', 1000000)")
            await connection.execute("DELETE FROM outbox")
        finally:
            await connection.close()

    with pytest.raises(asyncpg.RaiseError, match="is not published yet"):
        asyncio.run(run())
    assert fetch(database, OUTBOX) == outbox


def test_a_relays_position_past_the_outbox_is_not_trusted(database, outbox):
    _published(database, medledger=len(outbox) + 1000)  # as only a service role recording what it never published
    _age(database, len(outbox), days=30)
    with pytest.raises(asyncpg.RaiseError, match=f"position {len(outbox) + 1000} is past the outbox's newest record"):
        execute(as_maintenance(database), "DELETE FROM outbox WHERE position < 5")
    result = CliRunner().invoke(app, ["outbox", "prune", "--keep-days", "0"])
    assert result.exit_code == 2 and "outbox_relay is not to be trusted, and nothing is pruned" in result.stderr
    assert fetch(database, OUTBOX) == outbox


def test_prune_steps_over_missing_positions_and_counts_what_it_deleted(database, outbox):
    _published(database, medledger=60)
    execute(database, "DELETE FROM outbox WHERE position BETWEEN 5 AND 12 OR position = 30", owner=True)  # gaps
    _age(database, len(outbox), days=10)
    kept = fetch(database, OUTBOX)

    async def run(dry_run: bool):
        connection = await asyncpg.connect(plain(as_maintenance(database).app_url))
        try:
            return await prune(connection, datetime.now(UTC) - timedelta(days=1), chunk=4, dry_run=dry_run)
        finally:
            await connection.close()

    would = asyncio.run(run(True))
    assert (would.records, would.through) == (59 - 9, 59) and fetch(database, OUTBOX) == kept
    done = asyncio.run(run(False))
    assert (done.records, done.through) == (59 - 9, 59)
    assert fetch(database, OUTBOX) == outbox[59:]


def test_a_prune_that_fails_part_way_says_what_it_deleted(database, outbox, monkeypatch):
    from ledger.db.outbox import PruneStopped

    _published(database, medledger=50)
    _age(database, len(outbox), days=10)

    class Failing:
        """The maintenance connection, whose third DELETE fails."""

        def __init__(self, connection):
            self.connection, self.deletes = connection, 0

        async def fetch(self, *args):
            return await self.connection.fetch(*args)

        async def fetchval(self, *args):
            return await self.connection.fetchval(*args)

        async def execute(self, query, *args):
            self.deletes += query.startswith("DELETE")
            if self.deletes == 3:
                raise OSError("connection lost")
            return await self.connection.execute(query, *args)

    async def run():
        connection = await asyncpg.connect(plain(as_maintenance(database).app_url))
        try:
            return await prune(Failing(connection), datetime.now(UTC), chunk=10)
        finally:
            await connection.close()

    with pytest.raises(PruneStopped, match="stopped after 20 record.s. through position 20: connection lost"):
        asyncio.run(run())
    assert fetch(database, OUTBOX) == outbox[20:]
