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
    got = topic.values()
    assert sorted(orjson.dumps(without_seq(r), option=orjson.OPT_SORT_KEYS) for r in got) == sorted(
        orjson.dumps(without_seq(r), option=orjson.OPT_SORT_KEYS) for r in outputs
    )

    produced = defaultdict(list)
    for line in lines:
        event = orjson.loads(line)
        produced[(event["region"], event.get("member_id"))].append(event["event_id"])
    applied = defaultdict(list)
    for region, member, event_id in fetch(
        database, "SELECT region, member_id, event_id FROM ledger_events ORDER BY seq"
    ):
        applied[(region, member)].append(event_id)
    assert applied == produced
