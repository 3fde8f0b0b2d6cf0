"""A ledger stream per region: writers of different regions never wait for each other's lock, every stream
verifies, and a ledger written as one chain before streams upgrades with its history still verifiable and every
stream anchored to its head."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

from ledger.adoption import ADOPTED
from ledger.chain import GENESIS
from ledger.db.migrate import upgrade
from ledger.db.server import APP_ROLE, Database, _with_database, with_user
from ledger.db.streams import locks, make_streams, stream_heads
from ledger.intake import from_lines
from ledger.pipeline import Sequencer
from ledger.service import LedgerService
from ledger.streams import HISTORY_REGION, STREAM_BITS, Head, genesis, position, root_hash
from tests import builders as b
from tests.ledger.helpers import (
    IM_PARAMETERS,
    example_lines,
    execute,
    fetch,
    gap_free,
    ingest,
    plain,
    verify,
    written_before_partitions,
)

WAITING_ADVISORY = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"


# -- the ledger as a release before streams wrote it ----------------------------------------------------------------


class OneChain(Sequencer):
    """The writer before streams: one sequence and chain for every region, its adoptions for every region."""

    def __init__(self, heads: dict[str, Head], params_digest: str, parameters: str):
        super().__init__({}, params_digest, parameters)
        shared = next(iter(heads.values()), None)
        self.heads = dict.fromkeys(heads, shared)
        self.start0 = shared.seq if shared else 0

    @property
    def moved(self) -> int:
        shared = next(iter(self.heads.values()), None)
        return shared.seq - self.start0 if shared else 0


async def _one_chain_head(raw, regions, make: bool = False) -> dict[str, Head]:
    row = await raw.fetchrow("SELECT seq, hash FROM ledger_events ORDER BY seq DESC LIMIT 1")
    adopted = await raw.fetchval(
        f"SELECT params_digest FROM ledger_events WHERE event_type = '{ADOPTED}' ORDER BY seq DESC LIMIT 1"
    )
    head = Head(HISTORY_REGION, 0, row[0] if row else 0, bytes(row[1]) if row else GENESIS, adopted)
    return dict.fromkeys(regions, head)


def _old_ledger(pg_server, monkeypatch, lines: list[str], parameters: str = "") -> tuple[str, Database]:
    """A database at the schema before streams (0010), with `lines` ingested into one global chain."""
    import ledger.db.streams
    import ledger.service

    name = f"medledger_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_server._create(name, None))
    owner = _with_database(pg_server.base, name)
    upgrade(owner, "0010")
    db = Database(owner, with_user(owner, APP_ROLE, os.environ.get("MEDLEDGER_APP_PASSWORD")))
    with monkeypatch.context() as patched, written_before_partitions(db):
        patched.setattr(ledger.db.streams, "stream_heads", _one_chain_head)
        patched.setattr(ledger.service, "Sequencer", OneChain)

        async def run():
            async with LedgerService(db, parameters, prepare_schema=False) as service:
                items = list(from_lines(lines, "old"))
                for start in range(0, len(items), 25):
                    await service.ingest_batch(items[start : start + 25])

        asyncio.run(run())
    return name, db


def test_a_ledger_written_as_one_chain_upgrades_its_history_verifies_and_streams_start_from_its_head(
    pg_server, monkeypatch
):
    lines = example_lines("nanjing", "weihai")
    name, db = _old_ledger(pg_server, monkeypatch, lines)
    try:
        before = fetch(db, "SELECT seq, hash, region FROM ledger_events ORDER BY seq")
        assert [r["seq"] for r in before] == list(range(1, len(lines) + 2))  # one chain, one adoption for all
        assert before[0]["region"] == HISTORY_REGION
        head_seq, head_hash = before[-1]["seq"], bytes(before[-1]["hash"])

        upgrade(db.owner_url)
        assert tuple(fetch(db, "SELECT history_seq, history_hash FROM ledger_anchor")[0]) == (head_seq, head_hash)
        made = {r["region"]: bytes(r["genesis"]) for r in fetch(db, "SELECT region, genesis FROM ledger_streams")}
        assert made == {r: genesis(r, head_seq, head_hash) for r in ("320100", "371000")}
        report = verify(db)
        assert report.ok, (report.chain_breaks, report.differences[:5])
        assert (HISTORY_REGION, head_seq, head_hash) in [(h.region, h.seq, h.hash) for h in report.heads]

        b.fresh()
        more = example_lines("ningxia") + [b.as_line(b.enrolled("NJ-NEW", b.NANJING, on="2023-01-01"))]
        stats, _ = ingest(db, more)
        assert stats.appended == len(more)
        stats, _ = ingest(db, example_lines("inner-mongolia"), IM_PARAMETERS)
        assert fetch(db, f"SELECT count(*) FROM ledger_events WHERE seq <= {head_seq}")[0][0] == head_seq
        counts = gap_free(db)  # each stream from its genesis, derived from the history's head
        assert counts == {"640000": 66, "320100": 2, "150000": 46}
        report = verify(db)
        assert report.ok, (report.chain_breaks, report.differences[:5])
        heads = {h.region: h for h in report.heads}
        assert heads[HISTORY_REGION].seq == head_seq and heads["371000"].position == 0
        assert report.head == (head_seq + sum(counts.values()), root_hash(report.heads))

        # an old row altered: the history's chain breaks there
        execute(db, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
        execute(db, "UPDATE ledger_events SET payload = payload || ' ' WHERE seq = 5", owner=True)
        execute(db, "ALTER TABLE ledger_events ENABLE TRIGGER USER", owner=True)
        report = verify(db)
        assert not report.ok and 5 in [found.seq for found in report.chain_breaks]
    finally:
        pg_server.drop(name)


def test_a_history_rewritten_whole_no_longer_anchors_the_streams(pg_server, monkeypatch):
    name, db = _old_ledger(pg_server, monkeypatch, example_lines("weihai"))
    try:
        upgrade(db.owner_url)
        ingest(db, example_lines("ningxia"))
        # the history's last row dropped: its chain is still consistent in itself, but no longer ends at the anchor
        (last,) = fetch(db, f"SELECT max(seq) FROM ledger_events WHERE seq < {1 << STREAM_BITS}")[0]
        for table in ("ledger_settlements", "ledger_movements", "ledger_rejections", "ledger_events"):
            execute(db, f"ALTER TABLE {table} DISABLE TRIGGER USER", owner=True)
            execute(db, f"DELETE FROM {table} WHERE seq = $1", last, owner=True)
            execute(db, f"ALTER TABLE {table} ENABLE TRIGGER USER", owner=True)
        report = verify(db)
        assert any("not the anchor" in found.problem for found in report.chain_breaks), report.chain_breaks
    finally:
        pg_server.drop(name)


# -- writers of different regions ---------------------------------------------------------------------------------


def test_a_writer_of_one_region_commits_while_another_region_s_transaction_holds_its_lock(database):
    b.fresh()
    nanjing = [b.as_line(b.enrolled(f"NJ{n}", b.NANJING, on="2023-01-01")) for n in range(5)]
    weihai = [b.as_line(b.enrolled(f"WH{n}", b.WEIHAI, on="2023-01-01")) for n in range(5)]

    async def scenario():
        holder = await asyncpg.connect(plain(database.owner_url))
        probe = await asyncpg.connect(plain(database.owner_url))
        try:
            # what a writer of Nanjing holds from BEGIN to COMMIT
            await holder.execute(f"BEGIN; {locks(['320100'])}")
            async with LedgerService(database) as service:
                # Weihai commits meanwhile, without waiting for anything
                stats = await asyncio.wait_for(service.ingest(from_lines(weihai, "weihai")), timeout=60)
                assert stats.appended == len(weihai)
                assert await probe.fetchval(WAITING_ADVISORY) == 0
                # and a Nanjing writer does wait for the Nanjing lock: the probe can see a wait
                blocked = asyncio.create_task(service.ingest(from_lines(nanjing, "nanjing")))
                for _ in range(600):
                    if await probe.fetchval(WAITING_ADVISORY):
                        break
                    await asyncio.sleep(0.05)
                assert await probe.fetchval(WAITING_ADVISORY) == 1 and not blocked.done()
                await holder.execute("COMMIT")
                assert (await asyncio.wait_for(blocked, timeout=60)).appended == len(nanjing)
        finally:
            await holder.close()
            await probe.close()

    asyncio.run(scenario())
    assert gap_free(database) == {"371000": 6, "320100": 6}
    assert verify(database).ok


def test_a_batch_of_several_regions_takes_their_locks_in_one_order_and_streams_stay_apart(database):
    """Two writers whose batches both hold Nanjing and Weihai events, in opposite orders: no deadlock."""
    from tests.ledger.test_concurrency import _at_once

    b.fresh()
    files: list[list[str]] = [[], []]
    for n in range(120):
        pair = [
            b.as_line(b.enrolled(f"NJ{n}", b.NANJING, on="2023-01-01")),
            b.as_line(b.enrolled(f"WH{n}", b.WEIHAI, on="2023-01-01")),
        ]
        files[n % 2].extend(pair if n % 2 else pair[::-1])
    results = _at_once(database, files, batch_size=7)
    assert sum(r.appended for r in results) == 240
    assert gap_free(database) == {"320100": 121, "371000": 121}
    assert verify(database, batch_size=50).ok


def test_writers_making_one_region_s_stream_at_once_make_it_once_and_none_fails(database):
    """Writers meeting a region none has seen yet each make its stream at the same moment, outside their batches'
    transactions. Each check of the region's key passes before either has inserted, so the loser collided on the
    stream number: a unique violation that failed its whole batch (in a few rounds of every hundred here)."""

    async def run() -> tuple[int, list]:
        connections = [await asyncpg.connect(plain(database.app_url)) for _ in range(4)]
        failed = 0
        try:
            for n in range(300):
                regions = [str(500000 + n), f"X{n}"]  # a six-digit code, and one numbered by the sequence
                made = await asyncio.gather(*(make_streams(c, regions) for c in connections), return_exceptions=True)
                failed += sum(isinstance(outcome, BaseException) for outcome in made)
            rows = await connections[0].fetch("SELECT region, stream FROM ledger_streams WHERE region <> '*'")
        finally:
            for connection in connections:
                await connection.close()
        return failed, rows

    failed, rows = asyncio.run(run())
    assert failed == 0
    streams = dict(rows)
    assert len(streams) == 600 and len(set(streams.values())) == 600
    assert all(streams[str(500000 + n)] == 500000 + n for n in range(300))


def test_a_region_whose_stream_number_another_region_holds_is_refused_by_name(database):
    """Making streams does nothing on either key's conflict, so a number taken by another region (which only a
    hand-edited table or sequence could do) must not pass for the region's stream being made."""
    execute(
        database, "INSERT INTO ledger_streams (region, stream, genesis) VALUES ('elsewhere', 500001, '')", owner=True
    )

    async def run() -> None:
        connection = await asyncpg.connect(plain(database.app_url))
        try:
            await stream_heads(connection, ["500001"], make=True)
        finally:
            await connection.close()

    with pytest.raises(RuntimeError, match=r"no stream could be made for the regions \['500001'\]"):
        asyncio.run(run())


def test_a_stream_head_and_the_root_hash_anchor_a_verify(database):
    from ledger.replay import Replayer, keep_verification
    from ledger.streams import ROOT

    ingest(database, example_lines("nanjing", "weihai"))

    async def run(anchor=None, keep=False):
        replayer = Replayer(database)
        replayer.anchor = anchor
        report = await replayer.verify()
        if keep:
            connection = await asyncpg.connect(plain(database.owner_url))
            try:
                from datetime import UTC, datetime

                await keep_verification(connection, report, "test", datetime.now(UTC))
            finally:
                await connection.close()
        return report

    first = asyncio.run(run(keep=True))
    root = first.head[1].hex()
    nanjing = next(h for h in first.heads if h.region == "320100")
    assert asyncio.run(run((ROOT, root))).ok
    assert asyncio.run(run((nanjing.seq, nanjing.hash.hex()))).ok
    ingest(database, example_lines("ningxia"))
    # the ledger moved on: the root kept earlier still names heads its chains pass through
    assert asyncio.run(run((ROOT, root))).ok
    wrong = asyncio.run(run((ROOT, "0" * 64)))
    assert not wrong.ok and "no heads the chains pass through" in wrong.chain_breaks[0].problem
    # the Nanjing stream rewritten from its last event on: the head kept elsewhere no longer matches
    execute(database, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
    execute(database, "UPDATE ledger_events SET hash = $1 WHERE seq = $2", bytes(32), nanjing.seq, owner=True)
    execute(database, "ALTER TABLE ledger_events ENABLE TRIGGER USER", owner=True)
    assert not asyncio.run(run((ROOT, root))).ok
    assert position(nanjing.seq) == len(example_lines("nanjing")) + 1


def test_ingest_with_workers_writes_the_ledger_one_worker_writes(pg_server, monkeypatch, tmp_path):
    """The regions of a file ingested by two processes at once: the same rows, heads and root as by one. The
    command's own process ingests the first part, rather than wait for a process more."""
    import json

    from typer.testing import CliRunner

    from ledger import parallel_ingest
    from ledger.cli import app

    pools: list[int] = []
    made = parallel_ingest.ingest_pool
    monkeypatch.setattr(parallel_ingest, "ingest_pool", lambda workers: pools.append(workers) or made(workers))
    b.fresh()
    mixed = tmp_path / "mixed.jsonl"
    lines = example_lines("ningxia", "weihai", "nanjing")
    parked = b.visit("LATE", b.WEIHAI, on="2023-03-01", items=[b.line("300.00")])  # waits for its enrolment
    lines += [b.as_line(parked), "{not json", b.as_line(b.enrolled("LATE", b.WEIHAI, on="2023-01-01"))]
    mixed.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    ledgers = []
    for workers in ("1", "2"):
        name, db = pg_server.fresh()
        try:
            monkeypatch.setenv("DATABASE_URL", db.owner_url)
            result = CliRunner().invoke(app, ["ingest", str(mixed), "--workers", workers])
            assert result.exit_code == 0, result.output
            printed = sorted(result.stdout.splitlines())
            rows = fetch(db, "SELECT seq, event_id, hash, source FROM ledger_events ORDER BY seq")
            report = verify(db)
            assert report.ok, (report.chain_breaks, report.differences[:5])
            refused = fetch(db, "SELECT source, reason FROM ledger_rejections WHERE seq IS NULL")
            ledgers.append(([tuple(r) for r in rows], report.head, printed, [tuple(r) for r in refused]))
        finally:
            pg_server.drop(name)
    one, two = ledgers
    assert pools == [1]
    assert one[0] == two[0] and one[1] == two[1]  # rows, positions, hashes; root
    assert one[2] == two[2] and one[3] == two[3] == [(f"{mixed}:{len(lines) - 1}", "invalid_event")]
    assert parked["event_id"] in [row[1] for row in one[0]]  # released into the ledger by its enrolment
    assert all(json.loads(line) for line in one[2])


def test_the_outbox_is_read_up_to_a_position_that_may_still_commit_and_past_one_rolled_back(database):
    """Writers of different regions commit in parallel: a position taken by a transaction still running must hold
    the reader back (else it would step past it and never publish it); one rolled back is stepped over once every
    transaction running when it was first seen has ended."""
    from ledger.db.outbox import Gaps, pending

    insert = "INSERT INTO outbox (stream, key, value) VALUES ('settlements', 'M', $1) RETURNING position"

    async def scenario():
        slow, fast, reader = [await asyncpg.connect(plain(database.owner_url)) for _ in range(3)]
        gaps = Gaps()  # the reader's
        try:
            await slow.execute("BEGIN")
            first = await slow.fetchval(insert, "slow")
            second = await fast.fetchval(insert, "fast")  # committed at once, after a smaller position
            assert second > first
            assert await pending(reader, 0, 10, gaps) == []  # not past the position still running
            await slow.execute("COMMIT")
            assert [p.value for p in await pending(reader, 0, 10, gaps)] == ["slow", "fast"]

            await slow.execute("BEGIN")
            await slow.fetchval(insert, "rolled back")
            third = await fast.fetchval(insert, "after it")
            assert await pending(reader, second, 10, gaps) == []
            await slow.execute("ROLLBACK")
            assert [(p.position, p.value) for p in await pending(reader, second, 10, gaps)] == [(third, "after it")]
        finally:
            for connection in (slow, fast, reader):
                await connection.close()

    asyncio.run(scenario())


def test_the_outbox_is_not_read_past_a_position_whose_writer_is_newer_than_every_transaction_ended(database):
    """A snapshot's xmax is one past the newest transaction that has ended, not past every one begun: a writer
    whose transaction id is newer than that is in no snapshot's list of running transactions. Two writers commit in
    parallel (two `serve` processes, say): the newer one draws its outbox positions first, the older one draws
    after it and commits. The newer one's positions must still hold the reader back until it commits."""
    from ledger.db.outbox import Gaps, pending

    insert = "INSERT INTO outbox (stream, key, value) VALUES ('settlements', 'M', $1) RETURNING position"

    async def scenario():
        older, newer, reader = [await asyncpg.connect(plain(database.owner_url)) for _ in range(3)]
        gaps = Gaps()  # the reader's
        try:
            for writer in (older, newer):  # in this order: `newer` takes the greater transaction id
                await writer.execute("BEGIN")
                await writer.fetchval("SELECT pg_current_xact_id()")
            first = await newer.fetchval(insert, "newer")
            second = await older.fetchval(insert, "older")
            assert second > first
            await older.execute("COMMIT")  # now the newest transaction ended, and older than `newer`
            assert await pending(reader, 0, 10, gaps) == []
            assert await pending(reader, 0, 10, gaps) == []  # asked again: still held back
            await newer.execute("COMMIT")
            assert [p.value for p in await pending(reader, 0, 10, gaps)] == ["newer", "older"]
        finally:
            for connection in (older, newer, reader):
                await connection.close()

    asyncio.run(scenario())


def test_batches_of_two_regions_settled_at_once_both_commit_without_settling_again(database):
    """What two serve instances on different partitions do: each settles its batch without a lock, then commits
    under its region's lock. The other region's commit in between moves nothing the batch read: no conflict."""
    b.fresh()
    nanjing = [b.as_line(b.enrolled(f"NJ{n}", b.NANJING, on="2023-01-01")) for n in range(3)]
    weihai = [b.as_line(b.enrolled(f"WH{n}", b.WEIHAI, on="2023-01-01")) for n in range(3)]
    ingest(database, nanjing[:1] + weihai[:1])  # both streams exist and have adopted

    async def scenario():
        holder = await asyncpg.connect(plain(database.owner_url))
        try:
            async with LedgerService(database) as one, LedgerService(database) as other:
                mine = await one.prepare(list(from_lines(nanjing[1:], "nanjing")), None)
                theirs = await other.prepare(list(from_lines(weihai[1:], "weihai")), None)
                await holder.execute(f"BEGIN; {locks(['320100'])}")  # Nanjing's commit cannot start yet
                await asyncio.wait_for(other.commit(theirs), timeout=60)  # Weihai's does, meanwhile
                await holder.execute("COMMIT")
                await asyncio.wait_for(one.commit(mine), timeout=60)  # no Conflict: Weihai moved nothing it read
        finally:
            await holder.close()

    asyncio.run(scenario())
    assert gap_free(database) == {"320100": 4, "371000": 4}
    assert verify(database).ok


def test_two_writers_making_the_same_new_streams_in_opposite_orders_never_deadlock(database):
    """Each writer makes the streams of the new regions its batch meets (`make_streams`), in one statement; two
    writers meeting the same new regions, each in its own order, must insert their rows in one order too: each
    waits at a region the other has just inserted, and inserting them as met, each held a row the other waited
    for (a deadlock, seen once in a run of
    `test_a_batch_of_several_regions_takes_their_locks_in_one_order_and_streams_stay_apart`)."""

    async def race(regions: list[str]) -> None:
        one = await asyncpg.connect(plain(database.app_url))
        other = await asyncpg.connect(plain(database.app_url))
        try:
            await asyncio.gather(make_streams(one, regions), make_streams(other, regions[::-1]))
        finally:
            await one.close()
            await other.close()

    for round_ in range(5):
        regions = [f"race-{round_}-{n:03}" for n in range(300)]
        asyncio.run(race(regions))
        made = fetch(database, "SELECT count(*) FROM ledger_streams WHERE region = ANY($1::text[])", regions)
        assert made[0][0] == len(regions)
