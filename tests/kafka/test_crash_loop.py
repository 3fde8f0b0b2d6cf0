"""`serve` killed again and again (SIGKILL, at seeded random points of a stream of 30,000+ events) on the real
broker and PostgreSQL: every event is in the ledger once, `replay --verify` passes, the settlement topic
deduplicated by id is what `settle` makes of the same stream, and no offsets are ever reported gone.

A longer run: MEDLEDGER_CRASH_LOOP_EVENTS, MEDLEDGER_CRASH_LOOP_KILLS and MEDLEDGER_CRASH_LOOP_SEED (CI runs the
defaults), with `-s` to see the figures."""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
from datetime import UTC, datetime

import orjson

from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.kafka.streams import Topic, generated, publish, relayed_all, run, unique, without_seq
from tests.kafka.test_failures import _count, _serve, _until
from tests.kafka.test_restarts import _starts
from tests.ledger.helpers import IM_PARAMETERS, fetch, verify

EVENTS = int(os.environ.get("MEDLEDGER_CRASH_LOOP_EVENTS", "32000"))
KILLS = int(os.environ.get("MEDLEDGER_CRASH_LOOP_KILLS", "20"))
SEED = int(os.environ.get("MEDLEDGER_CRASH_LOOP_SEED", "19"))
BATCH = 500


def test_serve_killed_at_random_points_of_a_long_stream_loses_nothing_and_applies_nothing_twice(
    settings, database, tmp_path
):
    lines = generated(EVENTS, EVENTS // 15)
    assert len(lines) >= 30_000 or EVENTS < 32_000
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    settlements, movements = unique(offline, "settlement_id"), unique(offline, "movement_id")
    log = tmp_path / "serve.log"
    run(publish(settings, lines))
    rng = random.Random(SEED)
    # Where each kill falls: once so many events are in the ledger, and a little after, at random.
    targets = sorted(rng.sample(range(1, len(lines) * 9 // 10), KILLS))
    restarts: list[float] = []  # seconds from a start to its first settlement
    kills = 0
    for target in targets:
        before = _count(database)
        process = _serve(settings, database, batch_size=BATCH, log=log)
        try:
            assert _until(lambda b=before: _count(database) > b, timeout=60, every=0.02), log.read_text()[-2000:]
            restarts.append((datetime.now(UTC) - _starts(log)[-1]).total_seconds())
            _until(lambda t=target: _count(database) >= t, timeout=120, every=0.02)
            time.sleep(rng.uniform(0, 0.3))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        assert _count(database) < len(lines), "the stream ended before the last kill: the test proved less"
        kills += 1

    last = _serve(settings, database, batch_size=BATCH, log=log)
    try:
        assert _until(lambda: _count(database) == len(lines) and relayed_all(database), timeout=300), log.read_text()[
            -2000:
        ]
    finally:
        last.send_signal(signal.SIGTERM)
        assert last.wait(60) == 0, log.read_text()[-2000:]

    ids = {orjson.loads(line)["event_id"] for line in lines}
    stored = {row[0] for row in fetch(database, "SELECT event_id FROM ledger_events")}
    missing = len(ids - stored)
    twice = fetch(database, "SELECT count(*) - count(DISTINCT event_id) FROM ledger_events")[0][0]
    offsets = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", settings.group_id)

    topic = Topic(settings, settings.settlements_topic)
    got = run(topic.read_until(lambda values: len(unique(values, "settlement_id")) >= len(settlements), 120))
    raw = [r for r in got if "settlement_id" in r or "movement_id" in r]
    duplicates = len(raw) - len(unique(got, "settlement_id")) - len(unique(got, "movement_id"))
    said = log.read_text()
    print(
        f"\ncrash loop: {len(lines)} events, {kills} SIGKILLs (seed {SEED}); start to first settlement "
        f"min {min(restarts):.2f} s, median {statistics.median(restarts):.2f} s, max {max(restarts):.2f} s; "
        f"raw duplicates on the settlement topic {duplicates}; missing {missing}; applied twice {twice}"
    )
    assert kills >= 20 or KILLS < 20
    assert missing == 0 and twice == 0
    assert _count(database) == len(lines) and offsets[0][0] == len(lines)
    assert "were never consumed" not in said
    assert verify(database, batch_size=500).ok
    assert {k: without_seq(v) for k, v in unique(got, "settlement_id").items()} == {
        k: without_seq(v) for k, v in settlements.items()
    }
    assert set(unique(got, "movement_id")) == set(movements)
    assert max(restarts) < 5, restarts  # 3 s in the test of a single restart; a margin for a loaded machine
