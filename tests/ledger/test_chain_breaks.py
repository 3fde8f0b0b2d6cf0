"""What verification finds when a region's stream is altered behind the ledger's back (with the append-only guards
switched off by the database's owner): each break named at the event where the chain stops holding."""

from __future__ import annotations

import asyncio

import pytest

from ledger.chain import link
from ledger.replay import Replayer
from tests import builders as b
from tests.ledger.helpers import example_lines, fetch, ingest, unguarded, verify

WEIHAI = "371000"
DERIVED = ("ledger_settlements", "ledger_movements", "ledger_incentives", "ledger_rejections")


@pytest.fixture
def weihai(database):
    ingest(database, example_lines("weihai"))
    assert verify(database).ok
    return database


def _stream(db) -> list[tuple[int, str, bytes, bytes]]:
    return [
        (seq, payload, bytes(prev), bytes(own))
        for seq, payload, prev, own in fetch(
            db, "SELECT seq, payload, prev_hash, hash FROM ledger_events WHERE region = $1 ORDER BY seq", WEIHAI
        )
    ]


def _bare(db) -> list[int]:
    """Positions of the stream whose events have no derived row (deleting one leaves nothing referring to it)."""
    where = " AND ".join(
        f"NOT EXISTS (SELECT 1 FROM {t} d WHERE d.seq = e.seq AND d.region = e.region)" for t in DERIVED
    )
    return [
        row[0]
        for row in fetch(db, f"SELECT seq FROM ledger_events e WHERE region = $1 AND {where} ORDER BY seq", WEIHAI)
    ]


def _breaks(db) -> list[tuple[int, str]]:
    return [(found.seq, found.problem) for found in verify(db).chain_breaks]


def test_every_event_of_the_stream_is_linked_to_the_one_before_by_its_own_bytes(weihai):
    stream = _stream(weihai)
    assert len(stream) > 10
    for (seq, _, _, before), (after_seq, payload, prev, own) in zip(stream, stream[1:]):
        assert after_seq == seq + 1 and prev == before and own == link(prev, after_seq, payload)


def test_a_forged_payload_is_named_where_it_was_forged(weihai):
    seq = _stream(weihai)[5][0]
    unguarded(weihai, "ledger_events", "UPDATE ledger_events SET payload = payload || ' ' WHERE seq = $1", seq)
    assert [(found, problem.split(":")[0]) for found, problem in _breaks(weihai)] == [
        (seq, "hash does not match the event's bytes")
    ]


def test_a_removed_event_breaks_the_chain_at_the_one_after_it(weihai):
    seq = next(s for s in _bare(weihai) if s != _stream(weihai)[-1][0])
    unguarded(weihai, "ledger_events", "DELETE FROM ledger_events WHERE seq = $1", seq)
    assert [(found, problem.split(":")[0]) for found, problem in _breaks(weihai)] == [
        (seq + 1, "sequence gap"),
        (seq + 1, "prev_hash does not match the previous event's hash"),
    ]


def test_a_changed_prev_hash_is_named_at_that_event_alone(weihai):
    stream = _stream(weihai)
    seq = stream[3][0]
    unguarded(weihai, "ledger_events", "UPDATE ledger_events SET prev_hash = $2 WHERE seq = $1", seq, stream[0][3])
    assert _breaks(weihai) == [
        (seq, "prev_hash does not match the previous event's hash"),
        (seq, "hash does not match the event's bytes"),
    ]
    # its own hash and the next event's link are untouched: only the altered row is named
    assert _stream(weihai)[4][2] == stream[3][3]


def test_a_stream_cut_short_is_consistent_in_itself_and_caught_by_a_head_kept_outside(weihai):
    """What only a head kept outside the database shows (`replay --verify --anchor SEQ:HASH`)."""
    b.fresh()
    ingest(weihai, [b.as_line(b.enrolled("WH-LAST", b.WEIHAI, on="2023-01-01"))])
    head = next(h for h in verify(weihai).heads if h.region == WEIHAI)
    assert head.seq == _stream(weihai)[-1][0] and head.seq in _bare(weihai)
    unguarded(weihai, "ledger_events", "DELETE FROM ledger_events WHERE seq = $1", head.seq)
    assert _breaks(weihai) == []  # the chain that is left holds
    replayer = Replayer(weihai, batch_size=40)
    replayer.anchor = (head.seq, head.hash.hex())
    anchored = asyncio.run(replayer.verify())
    assert anchored.chain_breaks and not anchored.ok


def test_a_verify_split_over_processes_walks_each_stream_where_it_is_replayed_and_finds_what_one_process_finds(
    database,
):
    """Each process of a parallel verify walks the chains of the regions it replays; the heads come together in
    the process that started them, as one replayer would have listed them, and are checked against an anchor."""
    from ledger.adoption import EVERY_REGION
    from ledger.replay import verify_in_parallel
    from ledger.streams import balanced

    ingest(database, example_lines("weihai", "ningxia", "nanjing"))
    counts = {r[0]: r[1] for r in fetch(database, "SELECT region, count(*) FROM ledger_events GROUP BY region")}
    alone = verify(database)
    split = verify_in_parallel(database, 40, 2, counts)
    assert alone.ok and split.ok and len(alone.heads) == 4
    assert split.heads == alone.heads and split.head == alone.head
    root = ("root", alone.head[1].hex())
    assert not verify_in_parallel(database, 40, 2, counts, anchor=root).chain_breaks
    assert verify_in_parallel(database, 40, 2, counts, anchor=("root", "00" * 32)).chain_breaks
    # a forged event of a region a worker process replays, and one of the region this process replays
    groups = balanced({r: n for r, n in counts.items() if r != EVERY_REGION}, 2)
    assert len(groups) == 2
    for region in (groups[1][0], groups[0][0]):
        (seq,) = fetch(database, "SELECT min(seq) + 3 FROM ledger_events WHERE region = $1", region)[0]
        unguarded(database, "ledger_events", "UPDATE ledger_events SET payload = payload || ' ' WHERE seq = $1", seq)
        expected = [(seq, "hash does not match the event's bytes")]
        assert [(x.seq, x.problem.split(":")[0]) for x in verify(database).chain_breaks if x.seq == seq] == expected
        found = verify_in_parallel(database, 40, 2, counts).chain_breaks
        assert [(x.seq, x.problem.split(":")[0]) for x in found if x.seq == seq] == expected


def test_a_stream_read_a_few_positions_at_a_time_is_read_whole_across_its_gaps(weihai, monkeypatch):
    """Replay reads the next positions of a stream, and the chain is walked the same way (`events_after`,
    `verify_stream`); where they do not hold just as many events, a gap or a stream's end, the first events after
    are read instead: whatever the sizes, what is found is the same."""
    from ledger.db import streams

    stream = _stream(weihai)
    removed = next(s for s in _bare(weihai) if s not in (stream[-1][0], stream[2][0] + 1))
    unguarded(weihai, "ledger_events", "DELETE FROM ledger_events WHERE seq = $1", removed)
    unguarded(weihai, "ledger_events", "UPDATE ledger_events SET payload = payload || ' ' WHERE seq = $1", stream[2][0])

    def found(batch_size: int, chunk: int) -> tuple[list, list, int]:
        monkeypatch.setattr(streams.verify_stream, "__defaults__", (chunk, None))
        report = verify(weihai, batch_size=batch_size)
        breaks = [(x.seq, x.problem) for x in report.chain_breaks]
        return breaks, [(d.seq, d.what, d.detail) for d in report.differences], report.events

    whole = found(40, 20_000)
    assert {problem.split(":")[0] for _, problem in whole[0]} >= {
        "sequence gap",
        "hash does not match the event's bytes",
    }
    assert whole[2] == len(stream) - 1
    for batch_size, chunk in ((1, 1), (2, 3), (5, 2)):
        assert found(batch_size, chunk) == whole
