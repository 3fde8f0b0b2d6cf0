"""The ledger tables partitioned by region: an existing ledger upgrades into partitions and verifies as before, a
region's rows are in its own partition and a region's stream is read from it alone, the guards hold on every
partition, an event id stays the ledger's across regions, a new region gets partitions of its own, and a region
detached to move it to a server of its own leaves the others ingesting and verifying, and verifies there."""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid

import asyncpg
import pytest

from ledger.db.migrate import upgrade
from ledger.db.parking import HELD
from ledger.db.partitions import TABLES, listed
from ledger.db.recorder import TAKEN_IDS
from ledger.db.server import APP_ROLE, Database, _with_database, with_user
from ledger.db.streams import HEADS, STREAM_ROWS
from ledger.replay import Replayer, ReplayReport
from ledger.streams import base
from tests import builders as b
from tests.ledger.helpers import (
    example_lines,
    execute,
    fetch,
    ingest,
    plain,
    verify,
    written_before_partitions,
)
from tests.ledger.test_streams import _old_ledger

# Where each table's rows are: (table, partition, region) with their count.
PLACES = " UNION ALL ".join(
    f"SELECT '{table}', tableoid::regclass::text, region, count(*) FROM {table} GROUP BY 2, 3" for table in TABLES
)
PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")


def places(db: Database) -> set[tuple]:
    return {tuple(row) for row in fetch(db, PLACES, owner=True)}


def _ledger_at_0011(pg_server) -> tuple[str, Database, ReplayReport]:
    """A database at the schema before partitions (0011), written by streams of three regions, with a refusal
    of input that never became an event; and its verification."""
    name = f"medledger_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_server._create(name, None))
    owner = _with_database(pg_server.base, name)
    upgrade(owner, "0011")
    db = Database(owner, with_user(owner, APP_ROLE, os.environ.get("MEDLEDGER_APP_PASSWORD")))
    with written_before_partitions(db):
        ingest(db, example_lines("nanjing", "weihai"), prepare_schema=False)
        ingest(db, [*example_lines("ningxia"), "not json at all"], prepare_schema=False)
        report = verify(db)
    return name, db, report


def test_a_ledger_at_0011_upgrades_into_a_partition_a_region_and_verifies_with_the_same_heads_and_root(pg_server):
    name, db, before = _ledger_at_0011(pg_server)
    try:
        assert before.ok, (before.chain_breaks, before.differences[:5])
        counts = {t: fetch(db, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
        assert counts["ledger_rejections"] >= 1 and counts["ledger_settlements"] > 0

        upgrade(db.owner_url)

        assert fetch(db, "SELECT relkind::text FROM pg_class WHERE relname = 'ledger_events'", owner=True)[0][0] == "p"
        assert {t: fetch(db, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES} == counts
        assert fetch(db, "SELECT count(*) FROM ledger_event_ids")[0][0] == counts["ledger_events"]
        found = places(db)
        for table, partition, region, _ in found:
            assert partition == (f"{table}_{region}" if region is not None else "ledger_rejections_none")
        regions = {region for table, _, region, _ in found if table == "ledger_events"}
        assert regions == {"320100", "371000", "640000"}
        assert ("ledger_rejections", "ledger_rejections_none", None, 1) in found  # the unreadable line

        after = verify(db)
        assert after.ok, (after.chain_breaks, after.differences[:5])
        assert [(h.region, h.seq, h.hash) for h in after.heads] == [(h.region, h.seq, h.hash) for h in before.heads]
        assert after.head == before.head  # the same root

        # and the ledger goes on: the same input again is acknowledged as repeats, new input appended
        stats, _ = ingest(db, example_lines("weihai"))
        assert stats.appended == 0 and stats.duplicates == len(example_lines("weihai"))
        b.fresh()
        stats, _ = ingest(db, [b.as_line(b.enrolled("NJ-NEW", b.NANJING, on="2023-01-01"))])
        assert stats.appended == 1
        assert verify(db).ok
    finally:
        pg_server.drop(name)


def test_a_region_s_stream_is_read_from_its_partition_alone(database):
    ingest(database, example_lines("nanjing", "weihai"))
    walk = "EXPLAIN (COSTS OFF) " + STREAM_ROWS
    for n, value in enumerate((base(320100), base(320101), 100, "'320100'"), start=1):
        walk = walk.replace(f"${n}", str(value))
    plan = "\n".join(row[0] for row in fetch(database, walk))
    assert "ledger_events_320100" in plan, plan
    assert "ledger_events_371000" not in plan and "default" not in plan, plan
    # a writer's look-up of its regions' heads, each in its region's partition (pruned as it runs)
    assert _partitions_read(database, HEADS, ["320100"]) == {"ledger_streams", "ledger_events_320100"}
    # a repeat's look-up: one probe of the ids' primary key, then the event in its region's partition alone
    (event_id,) = fetch(database, "SELECT event_id FROM ledger_events WHERE region = '371000' LIMIT 1")[0]
    assert _partitions_read(database, HELD, [event_id]) == {"ledger_event_ids", "ledger_events_371000"}


def _partitions_read(db: Database, query: str, *arguments) -> set[str]:
    """The tables `query` reads as it runs (those of its plan not pruned, at plan time or as it runs)."""
    plan = [row[0] for row in fetch(db, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query, *arguments)]
    scans = [line for line in plan if " Scan " in line and " on " in line and "(never executed)" not in line]
    return {line.split(" on ")[1].split()[0] for line in scans}


def test_a_partition_refuses_to_change_or_lose_a_row_even_to_its_owner(database):
    ingest(database, [*example_lines("weihai"), "not json at all"])
    kept = places(database)
    filled = {partition for _, partition, _, _ in kept}
    assert {"ledger_events_371000", "ledger_settlements_371000", "ledger_rejections_none"} <= filled
    every = {row[1] for row in asyncio.run(_listed(database))}
    for partition in sorted(every):
        changes = ["DELETE FROM {p}", "UPDATE {p} SET region = region"] if partition in filled else []
        for statement in [*changes, "TRUNCATE {p} CASCADE"]:
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                execute(database, statement.format(p=partition), owner=True)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                execute(database, statement.format(p=partition))  # the service reaches rows through the parent
        with pytest.raises(asyncpg.PostgresError, match="append-only|referenced in a foreign key"):
            execute(database, f"TRUNCATE {partition}", owner=True)
    assert places(database) == kept


def test_an_event_id_of_another_region_is_refused_as_a_conflicting_repeat(database):
    b.fresh()
    enrolled = b.enrolled("NJ-1", b.NANJING, on="2023-01-01")
    ingest(database, [b.as_line(enrolled)])
    thief = b.enrolled("WH-1", b.WEIHAI, on="2023-01-01")
    thief["event_id"] = enrolled["event_id"]
    stats, published = ingest(database, [b.as_line(thief)])
    assert stats.appended == 0
    assert [r["reason"] for r in published] == ["event_id_conflict"]
    assert fetch(database, "SELECT count(*) FROM ledger_events WHERE region = '371000'")[0][0] == 0

    # and written past the check (a writer of the other region beating it to the id), the index refuses it
    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        execute(database, "INSERT INTO ledger_event_ids (event_id, region) VALUES ($1, '371000')", enrolled["event_id"])
    assert refused.value.constraint_name in TAKEN_IDS


def test_a_region_without_partitions_waits_in_default_until_upgrade_gives_it_its_own(database):
    # a region the schema was not made for (its partitions are not there yet: taken out here, while empty)
    for table in TABLES:
        execute(database, f"ALTER TABLE {table} DETACH PARTITION {table}_640000", owner=True)
        execute(database, f"DROP TABLE {table}_640000", owner=True)
    ingest(database, [*example_lines("ningxia", "weihai")], prepare_schema=False)
    waiting = {(t, p) for t, p, r, _ in places(database) if r == "640000"}
    assert waiting and {p for _, p in waiting} == {f"{t}_default" for t, _ in waiting}
    rows = sum(n for _, _, r, n in places(database) if r == "640000")
    before = verify(database)
    assert before.ok, (before.chain_breaks, before.differences[:5])

    made = upgrade(database.owner_url)

    assert made == {"640000": rows}
    assert {(t, p) for t, p, r, _ in places(database) if r == "640000"} == {(t, f"{t}_640000") for t, _ in waiting}
    assert {f"{t}_640000" for t in TABLES} <= {row[1] for row in asyncio.run(_listed(database))}
    for table in TABLES:
        assert fetch(database, f"SELECT count(*) FROM {table}_default", owner=True)[0][0] == 0
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        execute(database, "TRUNCATE ledger_events_640000 CASCADE", owner=True)
    guards = fetch(
        database,
        "SELECT DISTINCT tgenabled::text FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = ANY($1::regclass[])",
        [f"{table}_default" for table in TABLES],
        owner=True,
    )
    assert [row[0] for row in guards] == ["O"]  # the guards lifted for the move are back on
    after = verify(database)
    assert after.ok and after.head == before.head
    assert upgrade(database.owner_url) == {}  # once
    b.fresh()
    stats, _ = ingest(database, [b.as_line(b.enrolled("NX-NEW", b.NINGXIA, on="2023-01-01"))])
    assert stats.appended == 1
    assert fetch(database, "SELECT count(*) FROM ledger_events_default", owner=True)[0][0] == 0


async def _listed(db: Database) -> list[tuple[str, str, str]]:
    connection = await asyncpg.connect(plain(db.owner_url))
    try:
        return await listed(connection)
    finally:
        await connection.close()


# -- a region moved to a server of its own --------------------------------------------------------------------------

# What an operator runs to take a region's partitions (`_R`) out of the ledger (docs/scaling.md): the tables that
# refer to its events first, each one's reference to the parent dropped (the rows are referred to their events again
# on the server they move to), then its events.
DETACH = [
    *(
        statement
        for table in TABLES[1:]
        for statement in (
            f"ALTER TABLE {table} DETACH PARTITION {table}_R",
            *([f"ALTER TABLE {table}_R DROP CONSTRAINT {table}_seq_fkey"] if table != "ledger_signatures" else []),
        )
    ),
    "ALTER TABLE ledger_events DETACH PARTITION ledger_events_R",
]


async def _copy(source: Database, target: Database, region: str) -> None:
    """The region's detached tables, its stream, the parameter sets and its projections, copied into `target` (a
    ledger of its own), as binary COPY. The anchor is the same row in both: neither holds a history."""
    into = await asyncpg.connect(plain(target.owner_url))
    out = await asyncpg.connect(plain(source.owner_url))
    try:
        copies = [
            ("parameter_sets", "SELECT * FROM parameter_sets"),
            ("ledger_streams", f"SELECT * FROM ledger_streams WHERE region = '{region}'"),
            *((table, f"SELECT * FROM {table}_{region}") for table in TABLES),
            ("ledger_event_ids", f"SELECT event_id, region FROM ledger_events_{region}"),
            *((table, f"SELECT * FROM {table} WHERE region = '{region}'") for table in PROJECTIONS),
        ]
        async with into.transaction():
            for table, query in copies:
                data = io.BytesIO()
                await out.copy_from_query(query, output=data, format="binary")
                data.seek(0)
                await into.copy_to_table(table, source=data, format="binary")
    finally:
        await into.close()
        await out.close()


ANCHOR = "SELECT history_seq, history_hash FROM ledger_anchor"


def _move(db: Database, own: Database, region: str) -> None:
    """`region` detached from `db` and copied to `own`; its projections go with it (the ids it used stay taken
    in `db`: ledger_event_ids is append-only)."""
    for statement in DETACH:
        execute(db, statement.replace("_R", f"_{region}"), owner=True)
    asyncio.run(_copy(db, own, region))
    for table in PROJECTIONS:
        execute(db, f"DELETE FROM {table} WHERE region = $1", region, owner=True)


def test_a_region_detached_leaves_the_others_ingesting_and_verifying_and_verifies_on_a_server_of_its_own(pg_server):
    name, db = pg_server.fresh()
    own_name, own = pg_server.fresh()
    try:
        ingest(db, example_lines("nanjing", "weihai", "ningxia"))
        whole = verify(db)
        assert whole.ok
        weihai_head = next(h for h in whole.heads if h.region == "371000")

        assert fetch(db, ANCHOR) == fetch(own, ANCHOR)
        _move(db, own, "371000")

        # the others ingest and verify; Weihai's stream is empty here now
        b.fresh()
        stats, _ = ingest(db, [b.as_line(b.enrolled("NJ-NEW", b.NANJING, on="2023-01-01"))])
        assert stats.appended == 1
        here = verify(db)
        assert here.ok, (here.chain_breaks, here.differences[:5])
        assert {h.region: h.position for h in here.heads}["371000"] == 0

        # on its own server, its stream verifies from the same genesis to the same head (`replay --verify --region`)
        replayer = Replayer(own, batch_size=40)
        replayer.of_regions_alone(["371000"])
        there = asyncio.run(replayer.verify())
        assert there.ok, (there.chain_breaks, there.differences[:5])
        assert [(h.region, h.seq, h.hash) for h in there.heads] == [("371000", weihai_head.seq, weihai_head.hash)]
        assert there.events == len(example_lines("weihai")) + 1  # and its adoption
        assert fetch(own, "SELECT count(*) FROM ledger_events")[0][0] == len(example_lines("weihai")) + 1
        # and its events are still its: one changed there is found
        execute(own, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
        execute(own, "UPDATE ledger_events SET payload = payload || ' ' WHERE seq = $1", weihai_head.seq, owner=True)
        broken = asyncio.run(replayer.verify())
        assert not broken.ok and weihai_head.seq in [found.seq for found in broken.chain_breaks]
    finally:
        pg_server.drop(name)
        pg_server.drop(own_name)


def test_a_region_begun_after_the_history_moves_and_verifies_where_the_history_is_not(pg_server, monkeypatch):
    name, db = _old_ledger(pg_server, monkeypatch, example_lines("nanjing", "weihai"))
    own_name, own = pg_server.fresh()
    try:
        upgrade(db.owner_url)
        ingest(db, example_lines("ningxia"))  # a stream of its own, no row in the history
        whole = verify(db)
        assert whole.ok
        ningxia = next(h for h in whole.heads if h.region == "640000")
        # the new server starts from the same anchor (set by its owner before anything is written there)
        (history_seq, history_hash) = fetch(db, ANCHOR)[0]
        execute(own, "ALTER TABLE ledger_anchor DISABLE TRIGGER USER", owner=True)
        execute(own, "DELETE FROM ledger_anchor", owner=True)
        execute(
            own,
            "INSERT INTO ledger_anchor (history_seq, history_hash) VALUES ($1, $2)",
            history_seq,
            history_hash,
            owner=True,
        )
        execute(own, "ALTER TABLE ledger_anchor ENABLE TRIGGER USER", owner=True)

        _move(db, own, "640000")

        here = verify(db)  # the history and the other streams, whole
        assert here.ok, (here.chain_breaks, here.differences[:5])
        # there, a verify of the whole ledger misses the history it was never given; of the region, it verifies
        assert any("not the anchor" in found.problem for found in verify(own).chain_breaks)
        replayer = Replayer(own, batch_size=40)
        replayer.of_regions_alone(["640000"])
        there = asyncio.run(replayer.verify())
        assert there.ok, (there.chain_breaks, there.differences[:5])
        assert [(h.region, h.seq, h.hash) for h in there.heads] == [("640000", ningxia.seq, ningxia.hash)]

        # and as an operator types it there: without --region the missing history is a break, with it the region's
        # head is the one it had before the move
        from typer.testing import CliRunner

        from ledger.cli import app

        monkeypatch.setenv("DATABASE_URL", own.owner_url)
        whole_there = CliRunner().invoke(app, ["replay", "--verify"], env={"COLUMNS": "300"})
        assert whole_there.exit_code == 1, whole_there.output
        alone = CliRunner().invoke(app, ["replay", "--verify", "--region", "640000"], env={"COLUMNS": "300"})
        assert alone.exit_code == 0, alone.output
        assert "hash chain: intact" in alone.stdout
        assert f"head 640000: {ningxia.seq}:{ningxia.hash.hex()}" in alone.stdout
    finally:
        pg_server.drop(name)
        pg_server.drop(own_name)


def test_verify_reads_a_batch_s_stored_rows_by_index_whatever_the_partition_s_size(database):
    """`replay --verify` reads the stored rows of each batch's positions with one statement planned once for every
    batch (a generic plan). The plan must probe the index for the positions however many rows the partition has
    and however many positions the batch gives: a plan expecting `seq = ANY($1)` to match most of a partition
    scans it whole, testing every row against every position (134 ms for each partition of 25,000 incentive rows,
    every batch)."""
    from ledger.db.projection_store import Names, book_lookups
    from ledger.db.verification import COMPARED, compared_settlements, stored_rows
    from ledger.verify_rows import DERIVED

    async def plans() -> dict[str, tuple[str | None, str]]:
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            # rows with statistics, 20,000 of each table in one partition, with no events under them (they are only
            # planned: the owner drops the foreign keys of this database of the test's own). The incentives as a
            # year close writes them: every member's evaluation at the close's one position.
            for table, constraint in await connection.fetch(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' "
                "AND conparentid = 0 AND conrelid IN ('ledger_incentives'::regclass, 'ledger_settlements'::regclass)"
            ):
                await connection.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
            await connection.execute(
                "INSERT INTO ledger_incentives (seq, region, member_id, year, record) "
                "SELECT 7, '999999', 'M' || n, 2024, jsonb_build_object('pad', repeat('x', 200))::text "
                "FROM generate_series(1, 20000) n"
            )
            await connection.execute(
                "INSERT INTO ledger_settlements (settlement_id, seq, event_id, region, member_id, visit_id, "
                "visit_date, policy_id, fund_pool, fund_paid, record, deltas) "
                "SELECT 'S' || n, n, 'E' || n, '320100', 'M' || n, 'V' || n, '2024-01-01', 'p', 'general', 1, "
                "'{}', '[]' "
                "FROM generate_series(1, 20000) n"
            )
            await connection.execute("ANALYZE ledger_incentives, ledger_settlements")
            full = {
                table: await connection.fetchval(f"SELECT DISTINCT tableoid::regclass::text FROM {table}")
                for table in ("ledger_incentives", "ledger_settlements")
            }
            await connection.execute("CREATE TEMPORARY TABLE shadow (LIKE ledger_settlements INCLUDING INDEXES)")
            for statement in compared_settlements("shadow"):
                await connection.execute(statement)
            await connection.execute("SELECT set_config('medledger.compared_through', '100000', false)")
            # a batch's positions, none of which these rows are at
            listed = ",".join(map(str, range(100_001, 102_001)))
            positions = [f"'{{{listed}}}'::bigint[]", "100001", "102000"]
            found: dict[str, tuple[str | None, str]] = {}  # what: (the partition that has rows, the plan)
            for spec in DERIVED:
                for members in (None, ["M1"]) if spec.by_member else (None,):
                    query = stored_rows(spec.table, spec.columns, spec.where, members is not None)
                    plan = await _generic_plan(connection, query, *positions, *(["'{M1}'"] if members else []))
                    found[f"{spec.table} {members}"] = full.get(spec.table), plan
            # a visit looked up among the settlements compared, and whether it was reversed: by the visit's index
            # and the reversal's, not by position (all positions up to the batch are compared)
            query, _ = book_lookups(Names(settlements=COMPARED), {("320100", "V1")}, set(), False, first=1)
            plan = await _generic_plan(connection, query, "'{320100}'", "'{V1}'")
            found["visit looked up"] = full["ledger_settlements"], plan
            query = f"SELECT reverses FROM {COMPARED} WHERE reverses = ANY($1::text[])"
            plan = await _generic_plan(connection, query, "'{S1}'")
            found["reversal looked up"] = full["ledger_settlements"], plan
            return found
        finally:
            await connection.close()

    found = asyncio.run(plans())
    assert sum(partition is not None for partition, _ in found.values()) == 6  # 2 reads each, 2 lookups
    for what, (partition, plan) in found.items():
        if partition is not None:
            assert f" on {partition} " in plan, (what, plan)  # read, by index
            assert f"Seq Scan on {partition} " not in plan, (what, plan)
            if what.endswith("looked up"):
                assert f"_seq_idx on {partition} " not in plan, (what, plan)


async def _generic_plan(connection: asyncpg.Connection, query: str, *arguments: str) -> str:
    """The plan made for `query` once for all its parameters' values (given as SQL), as a prepared statement's is
    after five executions when it costs no more than theirs."""
    await connection.execute("SET plan_cache_mode = force_generic_plan")
    await connection.execute(f"PREPARE planned AS {query}")
    try:
        plan = await connection.fetch(f"EXPLAIN (COSTS OFF) EXECUTE planned({', '.join(arguments)})")
    finally:
        await connection.execute("DEALLOCATE planned")
    return "\n".join(row[0] for row in plan)


def test_a_batch_s_repeats_are_found_one_probe_each_without_statistics(database):
    """A plan made before autovacuum has analysed the ids or a partition (as after a large first ingest) finds
    each repeat by one probe of `ledger_events_event` (event_id, region) in its region's partition. On the index of
    `event_id` alone, such a plan read every index entry of the region for each repeat (a BitmapAnd with
    `ledger_events_member`'s region prefix), or hashed the whole ledger: a second for a batch of 1,140."""
    from bench.generate import generate

    partitions = [
        row[0]
        for row in fetch(
            database, "SELECT relname FROM pg_class WHERE relname LIKE 'ledger_events_%' AND relkind = 'r'", owner=True
        )
    ]
    for table in ["ledger_event_ids", *partitions]:
        execute(database, f"ALTER TABLE {table} SET (autovacuum_enabled = false)", owner=True)
    ingest(database, [json.dumps(event, default=str) for event in generate(4000, seed=5)], batch_size=500)
    analysed = fetch(database, "SELECT count(*) FROM pg_stats WHERE tablename LIKE 'ledger_event%'", owner=True)
    assert analysed == [(0,)]
    ids = [row[0] for row in fetch(database, "SELECT event_id FROM ledger_events ORDER BY md5(event_id) LIMIT 600")]
    listed_ids = "'{" + ",".join(ids) + "}'"

    async def plans() -> list[dict]:
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            made = []
            for mode in ("force_custom_plan", "force_generic_plan"):
                await connection.execute(f"SET plan_cache_mode = {mode}")
                await connection.execute(f"PREPARE planned AS {HELD}")
                explained = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE planned"
                made.append(json.loads(await connection.fetchval(f"{explained}({listed_ids})"))[0])
                await connection.execute("DEALLOCATE planned")
            return made
        finally:
            await connection.close()

    def nodes(node: dict):
        yield node
        for child in node.get("Plans", ()):
            yield from nodes(child)

    for plan in asyncio.run(plans()):
        top = plan["Plan"]
        assert top["Actual Rows"] == len(ids)
        scans = [node for node in nodes(top) if node.get("Relation Name", "").startswith("ledger_events_")]
        probed = [node for node in scans if node.get("Actual Loops", 0) > 0]
        assert probed and sum(node["Actual Loops"] for node in probed) == len(ids), scans
        for node in probed:
            assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node
            assert "event_id" in node["Index Cond"] and "region" in node["Index Cond"], node
        assert top["Shared Hit Blocks"] + top["Shared Read Blocks"] < 12 * len(ids)
