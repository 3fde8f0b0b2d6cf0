"""Hostile records on the real broker: `serve` refuses each as `settle` does, keeps it, and settles the rest of the
partition; nothing stalls."""

from __future__ import annotations

import orjson

from bench.fuzz import send_large, topic_for_large_records
from ledger.intake import MAX_LINE_BYTES
from ledger.offline import settle_lines
from tests.kafka.streams import Topic, publish, run, serving, unique, without_seq
from tests.ledger.helpers import fetch
from tests.ledger.test_hostile_input import hostile_lines


def test_serve_refuses_hostile_records_as_settle_does_and_settles_the_rest(settings, database):
    lines = hostile_lines()
    hostile, good = lines[:8], lines[8:]
    huge = [line for line in hostile if len(line) > MAX_LINE_BYTES]
    small = [line for line in hostile if len(line) <= MAX_LINE_BYTES]
    expected_refusals = ["invalid_event"] * 5 + ["too_large"] * 2  # as settle refuses them
    expected = [without_seq(r) for r in settle_lines(good) if "rejected" not in r]

    async def scenario():
        await topic_for_large_records(settings)
        await send_large(settings, huge)
        await publish(settings, small + good)
        async with serving(settings, database):
            refused = Topic(settings, settings.rejections_topic)
            await refused.read_until(lambda values: len(values) >= len(expected_refusals), timeout=120)
            settled = Topic(settings, settings.settlements_topic)
            await settled.read_until(lambda values: len(values) >= len(expected), timeout=120)
            return refused.values(), settled.values()

    refused, settled = run(scenario())
    assert sorted(r["reason"] for r in refused) == expected_refusals
    offline = settle_lines(lines)
    assert sorted(r["reason"] for r in offline if "rejected" in r and r["rejected"] not in _ids(good)) == sorted(
        expected_refusals
    )
    assert all(str(r["rejected"]).startswith(settings.events_topic) for r in refused if r["reason"] == "too_large")
    got = sorted(orjson.dumps(without_seq(r), option=orjson.OPT_SORT_KEYS) for r in _deduplicated(settled))
    assert got == sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in expected)
    kept = fetch(database, "SELECT reason, payload FROM ledger_rejections WHERE seq IS NULL")
    assert sorted(row["reason"] for row in kept) == expected_refusals
    assert all("\x00" not in row["payload"] and len(row["payload"]) <= MAX_LINE_BYTES for row in kept)
    assert all(len(row["payload"]) < 2_000 for row in kept if row["reason"] == "too_large")  # not its megabytes


def _ids(lines: list[bytes]) -> set[str]:
    return {orjson.loads(line)["event_id"] for line in lines}


def _deduplicated(records: list[dict]) -> list[dict]:
    by_id = unique(records, "settlement_id") | unique(records, "movement_id")
    others = [r for r in records if "settlement_id" not in r and "movement_id" not in r]
    return list(by_id.values()) + list({orjson.dumps(r): r for r in others}.values())
