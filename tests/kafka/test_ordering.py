"""Several partitions, four regions, many members: each member's events apply in the order produced, a year close
after everything produced before it, and the output is what `medledger settle` prints for the same stream."""

from __future__ import annotations

from collections import defaultdict

import orjson

from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.kafka.streams import Topic, generated, publish, run, serving, without_seq
from tests.ledger.helpers import IM_PARAMETERS, PRODUCED, fetch


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
    # the events really were spread: the service consumed from several partitions of the event topic
    consumed = fetch(
        database, "SELECT count(*) FROM consumer_offsets WHERE topic = $1 AND next_offset > 0", settings.events_topic
    )
    assert consumed[0][0] >= 2
    assert _canonical(topic.values()) == _canonical(outputs)

    assert _applied(database) == _produced(lines)


def _slow_prepare(monkeypatch, seconds: float = 0.05) -> None:
    """Each batch takes a while to settle, so that records arrive, and rebalances begin, while one is settled."""
    import asyncio

    from ledger.service import LedgerService

    real_prepare = LedgerService.prepare

    async def prepare(self, *args, **kwargs):
        prepared = await real_prepare(self, *args, **kwargs)
        await asyncio.sleep(seconds)
        return prepared

    monkeypatch.setattr(LedgerService, "prepare", prepare)


async def _publish_steadily(settings, lines, chunk: int = 40) -> None:
    import asyncio

    for start in range(0, len(lines), chunk):
        await publish(settings, lines[start : start + chunk])
        await asyncio.sleep(0.01)


def test_records_fetched_while_a_batch_settles_are_settled_next_without_waiting_for_the_subscriber(
    settings, database, monkeypatch
):
    """The handler goes on with what the consumer fetched meanwhile: more batches than the subscriber handed over,
    and still every event once, each member's in order."""
    from consumers.settle import Settler

    lines = generated(1_200, 80)
    outputs = [r for r in settle_lines(lines, parse_parameters(IM_PARAMETERS)) if "rejected" not in r]
    calls = {"handed over": 0, "settled": 0}
    real_call, real_settle = Settler.__call__, Settler._settle

    async def handed_over(self, records):
        calls["handed over"] += 1
        await real_call(self, records)

    async def settle(self, records):
        calls["settled"] += 1
        await real_settle(self, records)

    monkeypatch.setattr(Settler, "__call__", handed_over)
    monkeypatch.setattr(Settler, "_settle", settle)
    _slow_prepare(monkeypatch)

    async def scenario():
        async with serving(settings, database, IM_PARAMETERS, batch_size=100):
            await _publish_steadily(settings, lines)
            topic = Topic(settings, settings.settlements_topic)
            await topic.read_until(lambda values: len(values) >= len(outputs), timeout=120)
            return topic

    topic = run(scenario())
    assert calls["settled"] > calls["handed over"], calls
    assert _canonical(topic.values()) == _canonical(outputs)
    assert _applied(database) == _produced(lines)


def test_a_consumer_joining_while_a_batch_settles_takes_partitions_over_and_nothing_is_lost_or_repeated(
    settings, database, monkeypatch
):
    """A rebalance that begins while a batch is settled waits for it, and is not held up by the records the
    handler takes meanwhile."""
    import asyncio

    lines = generated(1_500, 100)
    outputs = [r for r in settle_lines(lines, parse_parameters(IM_PARAMETERS)) if "rejected" not in r]
    _slow_prepare(monkeypatch, seconds=0.3)  # the first consumer is inside a batch when it hears of the rebalance

    async def scenario():
        async with serving(settings, database, IM_PARAMETERS, batch_size=100) as first:
            feeding = asyncio.create_task(_publish_steadily(settings, lines))
            await asyncio.sleep(1.5)
            async with serving(settings, database, IM_PARAMETERS, batch_size=100) as second:
                await feeding
                topic = Topic(settings, settings.settlements_topic)
                await topic.read_until(lambda values: len(set(_canonical(values))) >= len(outputs), timeout=120)
                return topic, dict(first.claims.held), dict(second.claims.held)

    topic, first_held, second_held = run(scenario())
    assert first_held and second_held, "both consumers hold partitions once the rebalance is over"
    assert set(first_held).isdisjoint(second_held)
    # published at least once: a record may come twice, never differ or go missing
    assert set(_canonical(topic.values())) == set(_canonical(outputs)) and len(set(_canonical(outputs))) == len(outputs)
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
    query = f"SELECT region, member_id, event_id FROM {PRODUCED} ORDER BY seq"
    for region, member, event_id in fetch(database, query):
        applied[(region, member)].append(event_id)
    return applied
