"""A standard producer (kcat, librdkafka) against the real broker: keyed by region, its own partitioner keeps each
region in one partition and the ledger settles what `medledger settle` prints; keyed by member, every event that
lands off its region's partition is refused as misrouted and kept, none of them applied, and the rest settles as
`settle` settles the well-routed events alone; sent again keyed by region, the refused events are settled."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
from collections import Counter
from collections.abc import Callable

import asyncpg
import orjson
import pytest

from consumers import routing
from consumers.partitioning import partition_for, partition_of
from consumers.routing import PartitionCountChanged
from consumers.topics import ensure_topics
from ledger.authority import signer_from
from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.kafka.streams import Topic, publish, serving, wait_for, without_seq
from tests.ledger.helpers import IM_PARAMETERS, PRODUCED, example_lines, fetch, plain, verify

REGIONS = ("inner-mongolia", "nanjing", "ningxia", "weihai")
PARTITIONS = 4  # serve's default, and the topics' the tests create
MURMUR2 = ("-X", "partitioner=murmur2_random")  # librdkafka's name for the Java client's default partitioner


def by_region(event: dict) -> str:
    return event["region"]


def by_member(event: dict) -> str:
    return event.get("member_id") or event["region"]


def kcat(settings, lines: list[str], key: Callable[[dict], str], *options: str) -> None:
    """`lines` produced by kcat as they are, each keyed by `key(event)` and signed as the test producer (kcat's `-H`
    headers), in order: idempotent, as a producer whose order matters must be (librdkafka's default is not; without
    it a retry, say while a new topic's partitions get their leaders, may reorder a partition). kcat gives one set
    of headers to every record of a run, so each signed record is a run of its own."""
    signing = signer_from(settings.producer, settings.producer_key)
    command = ["kcat", "-P", "-b", settings.bootstrap_servers, "-t", settings.events_topic, "-K", "\t"]
    command += ["-X", "enable.idempotence=true", *options]
    for line in lines:
        headers = [
            option for name, value in signing.headers(line.encode()).items() for option in ("-H", f"{name}={value}")
        ]
        record = f"{key(orjson.loads(line))}\t{line}\n".encode()
        subprocess.run([*command, *headers], input=record, check=True, capture_output=True, timeout=120)


def misrouted(lines: list[str], key: Callable[[dict], str], partitioner: str = "murmur2") -> list[str]:
    """The lines whose key puts them on a partition other than their region's."""
    return [
        line
        for line in lines
        if partition_of(key(event := orjson.loads(line)).encode(), PARTITIONS, partitioner)
        != partition_for(event["region"], PARTITIONS, partitioner)
    ]


async def settled(settings, database, records: int, timeout: float = 120.0) -> tuple[list[dict], list[dict]]:
    """Once the consumer has stored `records` offsets and the relay has published everything: the settlement and
    rejection topics, read whole."""

    async def done() -> bool:
        connection = await asyncpg.connect(plain(database.app_url))
        try:
            stored = await connection.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer = $1", settings.group_id
            )
            relayed = await connection.fetchval(
                "SELECT coalesce((SELECT max(position) FROM outbox), 0) "
                "= coalesce((SELECT max(position) FROM outbox_relay), 0)"
            )
            counts = dict(await connection.fetch("SELECT stream, count(*) FROM outbox GROUP BY stream"))
        finally:
            await connection.close()
        done.counts = counts
        return stored == records and relayed

    assert await wait_for(done, timeout), "the consumer did not get through the records in time"
    topics = []
    for topic, stream in ((settings.settlements_topic, "settlements"), (settings.rejections_topic, "rejections")):
        expected = done.counts.get(stream, 0)
        reader = Topic(settings, topic)
        values = await reader.read_until(lambda values, n=expected: len(values) >= n, timeout=30 if expected else 2)
        topics.append(values)
    return topics[0], topics[1]


def shown(service, sample: str) -> float | None:
    """A value of serve's /metrics."""
    return service.metrics.registry.get_sample_value(sample)


def canonical(records: list[dict]) -> list[bytes]:
    return sorted(orjson.dumps(without_seq(record), option=orjson.OPT_SORT_KEYS) for record in records)


def offline(lines: list[str]) -> tuple[list[dict], list[dict]]:
    records = settle_lines(lines, parse_parameters(IM_PARAMETERS))
    return [r for r in records if "rejected" not in r], [r for r in records if "rejected" in r]


@pytest.fixture
def examples() -> list[str]:
    lines = example_lines(*REGIONS)
    assert {orjson.loads(line)["region"] for line in lines} == {"150000", "320100", "640000", "371000"}
    return lines


@pytest.mark.parametrize(
    ("options", "partitioner"),
    [(MURMUR2, "murmur2"), ((), "crc32")],
    ids=["murmur2_random", "librdkafka_default_with_crc32_configured"],
)
def test_kcat_keyed_by_region_settles_as_settle_prints(examples, settings, database, options, partitioner):
    settings = dataclasses.replace(settings, partitioner=partitioner)
    outputs, rejections = offline(examples)
    assert not misrouted(examples, by_region, partitioner)

    async def scenario():
        await ensure_topics(settings, PARTITIONS)
        kcat(settings, examples, by_region, *options)
        async with serving(settings, database, IM_PARAMETERS) as service:
            got = await settled(settings, database, len(examples))
            return got, shown(service, "medledger_misrouted_total")

    (settlements, refused), counted = asyncio.run(scenario())
    assert canonical(settlements) == canonical(outputs)
    assert canonical(refused) == canonical(rejections)
    assert counted == 0
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == len(examples)
    # kcat really spread the regions: each region's partition, computed as medledger computes it, holds them
    partitions = fetch(
        database, "SELECT count(*) FROM consumer_offsets WHERE topic = $1 AND next_offset > 0", settings.events_topic
    )[0][0]
    regions = {orjson.loads(line)["region"] for line in examples}
    assert partitions == len({partition_for(region, PARTITIONS, partitioner) for region in regions})


def test_kcat_keyed_by_member_has_every_misrouted_event_refused_and_kept_and_a_resend_by_region_settled(
    examples, settings, database, caplog
):
    wrong = misrouted(examples, by_member)
    right = [line for line in examples if line not in wrong]
    assert len(wrong) > 100 and len(right) > 20
    outputs, rejections = offline(right)
    caplog.set_level(logging.WARNING, logger="medledger.consumer")

    async def scenario():
        await ensure_topics(settings, PARTITIONS)
        kcat(settings, examples, by_member, *MURMUR2)
        async with serving(settings, database, IM_PARAMETERS) as service:
            first = await settled(settings, database, len(examples))
            counted = shown(service, "medledger_misrouted_total")
            kcat(settings, wrong, by_member, *MURMUR2)  # the same again, as wrong: repeats of what was refused
            again = await settled(settings, database, len(examples) + len(wrong))
            kcat(settings, wrong, by_region, *MURMUR2)  # sent again keyed by region
            second = await settled(settings, database, len(examples) + 2 * len(wrong))
            return first, counted, again, second, shown(service, "medledger_misrouted_total")

    (settlements, refused), counted, (_, refused_again), (_, refused_after), counted_after = asyncio.run(scenario())
    ids = [orjson.loads(line)["event_id"] for line in wrong]
    # every misrouted event refused, with its payload, on the topic and in the table; none applied
    misrouted_refusals = [r for r in refused if r["reason"] == "misrouted"]
    assert sorted(r["rejected"] for r in misrouted_refusals) == sorted(ids)
    assert {orjson.dumps(r["payload"]) for r in misrouted_refusals} == {
        orjson.dumps(orjson.loads(line)) for line in wrong
    }
    kept = fetch(database, "SELECT event_id, payload, seq FROM ledger_rejections WHERE reason = 'misrouted'")
    assert sorted(row[0] for row in kept) == sorted(ids) and all(row[2] is None for row in kept)
    assert {row[1] for row in kept} == set(wrong)
    assert counted == len(wrong)
    warned = [r for r in caplog.records if "misrouted, not applied" in r.getMessage()]
    assert len(warned) == 2 * len(wrong)  # each record once, as it was found
    assert {r.event_id for r in warned} == set(ids)
    assert all(r.partition != r.expected_partition and r.region for r in warned)
    # the rest is what settle makes of the well-routed events alone (an event whose member's enrolment was
    # misrouted waits for it, where settle refuses it)
    assert canonical(settlements) == canonical(outputs)
    waiting = {row[0] for row in fetch(database, "SELECT event_id FROM parked_events")}
    others = [r for r in refused if r["reason"] != "misrouted"]
    assert canonical(others) == canonical([r for r in rejections if r["rejected"] not in waiting])
    # sent again on their region's partition: each in the ledger once, its earlier refusal holding nothing
    # against its event id. Coming after the rest of its region now, it may be refused by a rule (a visit of a
    # year closed meanwhile), as an event of the ledger; never again as misrouted, nor as a repeat or a conflict.
    applied = fetch(database, f"SELECT event_id, count(*) FROM {PRODUCED} GROUP BY event_id")
    assert {event_id for event_id, _ in applied} == {orjson.loads(line)["event_id"] for line in examples}
    assert all(count == 1 for _, count in applied)
    before, after = Counter(canonical(refused)), Counter(canonical(refused_after))
    assert before <= after
    later = [orjson.loads(record) for record in (after - before).elements()]
    assert {r["rejected"] for r in later} <= set(ids)
    assert not {r["reason"] for r in later} & {"misrouted", "event_id_conflict"}
    unsequenced = fetch(database, "SELECT count(*) FROM ledger_rejections WHERE seq IS NULL")[0][0]
    assert unsequenced == len(wrong)
    # found off their partition a second time: counted, and acknowledged as repeats of the input refused
    assert canonical(refused_again) == canonical(refused) and counted_after == 2 * counted
    assert verify(database).ok  # the ledger replays to what it holds, misrouted refusals beside it


def test_serve_does_not_start_on_an_event_topic_with_another_partition_count(settings, database):
    async def scenario():
        await ensure_topics(settings, 2)
        async with serving(settings, database):
            pass

    with pytest.raises(PartitionCountChanged, match=r"has 2 partitions; serve is configured for 4"):
        asyncio.run(scenario())
    assert fetch(database, "SELECT count(*) FROM consumer_offsets")[0][0] == 0


def test_partitions_added_while_serving_are_reported_and_the_events_they_move_refused_as_misrouted(
    settings, database, monkeypatch, caplog
):
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

    monkeypatch.setattr(routing, "WATCH_EVERY", 0.2)
    caplog.set_level(logging.WARNING, logger="medledger.consumer")
    # from 4 partitions to 5: a region whose partition moves (to one that was there), and one whose stays
    moved, stays = "150000", "640000"
    assert partition_for(moved, 5) != partition_for(moved, 4) and partition_for(moved, 5) < PARTITIONS
    assert partition_for(stays, 5) == partition_for(stays, 4)
    enrolments = example_lines("inner-mongolia", "ningxia")
    lines = [line for line in enrolments if orjson.loads(line)["event_type"] == "member.enrolled"]

    async def scenario():
        await ensure_topics(settings, PARTITIONS)
        async with serving(settings, database) as service:
            admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
            await admin.start()
            try:
                await admin.create_partitions({settings.events_topic: NewPartitions(total_count=5)})
            finally:
                await admin.close()

            async def seen() -> bool:
                return shown(service, "medledger_event_partitions") == 5

            assert await wait_for(seen, 30)
            assert shown(service, "medledger_event_partitions_configured") == PARTITIONS
            await publish(settings, lines)  # `medledger produce` places them by the topic's 5 partitions
            await settled(settings, database, len(lines))
            return shown(service, "medledger_misrouted_total")

    counted = asyncio.run(scenario())
    refused = fetch(database, "SELECT event_id FROM ledger_rejections WHERE reason = 'misrouted'")
    assert {row[0] for row in refused} == {
        orjson.loads(line)["event_id"] for line in lines if orjson.loads(line)["region"] == moved
    }
    assert counted == len(refused)
    applied = {row[0] for row in fetch(database, f"SELECT region FROM {PRODUCED}")}
    assert applied == {stays}
    assert any("has 5 partitions; serve is configured for 4" in r.getMessage() for r in caplog.records)


def test_medledger_produce_keys_each_event_by_its_region_on_its_regions_partition(examples, settings):
    async def scenario():
        await publish(settings, examples)
        topic = Topic(settings, settings.events_topic)
        await topic.read_until(lambda values: len(values) >= len(examples), timeout=30)
        return topic.records

    records = asyncio.run(scenario())
    assert len(records) == len(examples)
    for record in records:
        region = orjson.loads(record.value)["region"]
        assert record.key == region.encode() and record.partition == partition_for(region, PARTITIONS)


def test_serve_configured_for_other_partitions_ends_in_one_line_naming_both_counts(settings, database, tmp_path):
    from tests.kafka.test_failures import _serve

    asyncio.run(ensure_topics(settings, PARTITIONS))
    log = tmp_path / "serve.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDLEDGER_PARTITIONS", "2")
        serve = _serve(settings, database, batch_size=40, log=log)
    assert serve.wait(120) == 1
    last = log.read_text().rstrip().splitlines()[-1]
    assert last == f"medledger: Kafka: {routing.mismatch(settings.events_topic, PARTITIONS, 2)}"


def test_serve_waits_for_an_event_topic_made_a_moment_ago_to_be_described_with_its_partitions(settings):
    async def scenario():
        waiting = asyncio.create_task(routing.described(settings, within=30))
        await asyncio.sleep(1.0)
        assert not waiting.done()  # no such topic yet: asked again, not refused
        await ensure_topics(settings, 3)
        return await waiting

    assert asyncio.run(scenario()) == 3
