"""Several partitions, four regions, many members: each member's events apply in the order produced, a year close
after everything produced before it, and the output is what `medledger settle` prints for the same stream."""

from __future__ import annotations

from collections import defaultdict

import orjson

from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.kafka.streams import Topic, generated, publish, run, serving, without_seq
from tests.ledger.helpers import IM_PARAMETERS, fetch


def test_members_keep_their_order_across_partitions_and_the_output_matches_settle(settings, database):
    lines = generated(1_500, 120)
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    outputs = [r for r in offline if "rejected" not in r]

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database, IM_PARAMETERS, batch_size=100):
            topic = Topic(settings, settings.settlements_topic)
            await topic.read_until(lambda values: len(values) >= len(outputs), timeout=120)
            return topic

    topic = run(scenario())
    assert len({record.partition for record in topic.records}) >= 2  # the stream really was spread
    assert _canonical(topic.values()) == _canonical(outputs)

    assert _applied(database) == _produced(lines)


def test_records_fetched_while_a_batch_settles_are_settled_next_without_waiting_for_the_subscriber(
    settings, database, monkeypatch
):
    """The handler goes on with what the consumer fetched meanwhile: more batches than the subscriber handed over,
    and still every event once, each member's in order."""
    import asyncio

    from consumers.settle import Settler

    lines = generated(1_200, 80)
    offline = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    outputs = [r for r in offline if "rejected" not in r]
    calls = {"handed over": 0, "settled": 0, "taken early": 0}
    real_call, real_settle, real_fetched = Settler.__call__, Settler._settle, Settler._fetched

    async def handed_over(self, records):
        calls["handed over"] += 1
        await real_call(self, records)

    async def settle(self, records):
        calls["settled"] += 1
        await real_settle(self, records)

    async def fetched(self):
        taken = await real_fetched(self)
        calls["taken early"] += len(taken)
        return taken

    monkeypatch.setattr(Settler, "__call__", handed_over)
    monkeypatch.setattr(Settler, "_settle", settle)
    monkeypatch.setattr(Settler, "_fetched", fetched)

    async def scenario():
        async with serving(settings, database, IM_PARAMETERS, batch_size=100):
            for start in range(0, len(lines), 50):  # a steady stream, arriving while batches settle
                await publish(settings, lines[start : start + 50])
                await asyncio.sleep(0.02)
            topic = Topic(settings, settings.settlements_topic)
            await topic.read_until(lambda values: len(values) >= len(outputs), timeout=120)
            return topic

    topic = run(scenario())
    assert calls["taken early"] > 0 and calls["settled"] > calls["handed over"], calls
    assert _canonical(topic.values()) == _canonical(outputs)
    assert _applied(database) == _produced(lines)


def _canonical(records: list[dict]) -> list[bytes]:
    return sorted(orjson.dumps(without_seq(r), option=orjson.OPT_SORT_KEYS) for r in records)


def _produced(lines) -> dict:
    """Each member's event ids in the order produced."""
    produced = defaultdict(list)
    for line in lines:
        event = orjson.loads(line)
        produced[(event["region"], event.get("member_id"))].append(event["event_id"])
    return produced


def _applied(database) -> dict:
    """Each member's event ids in ledger order."""
    applied = defaultdict(list)
    query = "SELECT region, member_id, event_id FROM ledger_events ORDER BY seq"
    for region, member, event_id in fetch(database, query):
        applied[(region, member)].append(event_id)
    return applied
