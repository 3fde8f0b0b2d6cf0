"""The broker's side: with ACLs (scripts/kafka/run acls), each producer's SASL user may write the event topic and
nothing else, the reporting user may only read the output, and medledger alone writes its output topics."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from consumers.produce import produce
from consumers.settings import Settings
from consumers.topics import ensure_topics, security_options
from tests.kafka.broker import TestBroker
from tests.kafka.conftest import own_settings
from tests.kafka.streams import run, serving
from tests.ledger.helpers import example_lines

USERS = {"broker": "broker-secret", "medledger": "medledger-secret", "hospital": "hospital-secret"}
USERS |= {"reporting": "reporting-secret"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    started = TestBroker(tmp_path_factory.mktemp("kafka-acls"), sasl_users=USERS, acls=True)
    yield started
    started.stop()


@pytest.fixture
def users(broker) -> dict[str, Settings]:
    service = own_settings(broker.bootstrap, "a", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN")
    broker.grant(
        MEDLEDGER_EVENTS_TOPIC=service.events_topic,
        MEDLEDGER_SETTLEMENTS_TOPIC=service.settlements_topic,
        MEDLEDGER_REJECTIONS_TOPIC=service.rejections_topic,
        MEDLEDGER_GROUP_ID=service.group_id,
        MEDLEDGER_REPORTING_GROUP_ID=service.reporting_group_id,
        MEDLEDGER_KAFKA_PRODUCERS="hospital",
        MEDLEDGER_KAFKA_READERS="reporting",
    )
    return {name: replace(service, sasl_username=name, sasl_password=USERS[name]) for name in USERS}


async def _write(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, **security_options(settings))
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b'{"settlement_id": "forged"}'), 30)
    finally:
        await producer.stop()


async def _read_one(settings: Settings, topic: str, group: str | None) -> bytes | None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **security_options(settings),
    )
    try:
        await consumer.start()
        batch = await asyncio.wait_for(consumer.getmany(timeout_ms=5_000), 30)
        return next((record.value for records in batch.values() for record in records), None)
    finally:
        await consumer.stop()


def test_producers_write_only_the_event_topic_and_medledger_alone_writes_its_output(users, database):
    service, hospital, reporting = users["medledger"], users["hospital"], users["reporting"]
    lines = example_lines("nanjing")

    async def scenario():
        await ensure_topics(service)  # as serve does at start-up
        assert (await produce(hospital, [line.encode() for line in lines])).sent == len(lines)
        for user in (hospital, reporting):  # neither may write the settlement topic
            with pytest.raises(TopicAuthorizationFailedError):
                await _write(user, service.settlements_topic)
        with pytest.raises(TopicAuthorizationFailedError):  # nor may a reader write the event topic
            await _write(reporting, service.events_topic)
        with pytest.raises((TopicAuthorizationFailedError, GroupAuthorizationFailedError)):  # nor read other's
            await _read_one(hospital, service.events_topic, service.group_id)
        async with serving(service, database):
            got = None
            for _ in range(12):  # the reporting user reads what medledger published
                got = got or await _read_one(reporting, service.settlements_topic, None)
        assert got, "medledger did not publish its settlements"
        # and may commit its position in its own group
        return await _read_one(reporting, service.settlements_topic, service.reporting_group_id)

    assert run(scenario()) is not None
