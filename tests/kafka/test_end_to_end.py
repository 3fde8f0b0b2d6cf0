"""Contract files through a real broker: produce → settle → settlement and rejection topics, the same records
as `medledger settle` prints for the file."""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.kafka.streams import Topic, publish, run, serving, unique, without_seq
from tests.ledger.helpers import IM_PARAMETERS, PRODUCED, example_lines, fetch


def _expected(lines, parameters: str):
    offline = settle_lines(lines, parse_parameters(parameters) if parameters else None)
    outputs = [record for record in offline if "rejected" not in record]
    rejections = [record for record in offline if "rejected" in record]
    return outputs, rejections


def _by_member(records: list[dict]) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for record in records:
        grouped[record["member_id"]].append(without_seq(record))
    return grouped


@pytest.mark.parametrize("region", ["ningxia", "weihai", "nanjing", "inner-mongolia"])
def test_each_region_settles_through_the_broker_as_settle_prints_it(region, settings, database):
    lines = example_lines(region)
    parameters = IM_PARAMETERS if region == "inner-mongolia" else ""
    outputs, rejections = _expected(lines, parameters)

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database, parameters):
            settled = Topic(settings, settings.settlements_topic)
            await settled.read_until(lambda values: len(values) >= len(outputs))
            refused = Topic(settings, settings.rejections_topic)
            await refused.read_until(lambda values: len(values) >= len(rejections), timeout=5 if not rejections else 60)
        return settled, refused

    settled, refused = run(scenario())
    got = settled.values()
    assert sorted(map(_canonical, map(without_seq, got))) == sorted(map(_canonical, map(without_seq, outputs)))
    assert sorted(map(_canonical, map(without_seq, refused.values()))) == sorted(
        map(_canonical, map(without_seq, rejections))
    )
    assert fetch(database, "SELECT count(*) FROM ledger_rejections")[0][0] == len(rejections)
    # One member's records arrive in the order the ledger produced them (one key, one partition).
    assert _by_member(got) == _by_member(outputs)
    # Every event applied exactly once, and the consumer's position stored with the ledger.
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == len(lines)
    stored = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", settings.group_id)
    assert stored[0][0] == len(lines)


def test_settlement_records_keep_the_contract_fields_and_national_aliases(settings, database):
    lines = example_lines("nanjing")

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database):
            topic = Topic(settings, settings.settlements_topic)
            await topic.read_until(lambda values: any("settlement_id" in v for v in values))
            return topic

    topic = run(scenario())
    settlement = next(iter(unique(topic.values(), "settlement_id").values()))
    for field, alias in (("settlement_id", "setl_id"), ("fund_paid", "hifp_pay"), ("cash_paid", "psn_cash_pay")):
        assert settlement[alias] == settlement[field]
    record = next(r for r in topic.records if b"settlement_id" in r.value)
    assert record.key.decode() == orjson.loads(record.value)["member_id"]
    assert dict(record.headers)["content-type"] == b"application/json"


def _canonical(record: dict) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
