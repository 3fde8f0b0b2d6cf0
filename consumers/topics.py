"""The topics medledger reads and writes, created when missing."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError
from faststream.kafka.security import parse_security

from .settings import Settings

log = logging.getLogger("medledger.topics")


async def ensure_topics(settings: Settings, partitions: int = 4, replication: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **security_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.events_topic, settings.settlements_topic, settings.rejections_topic]
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, partitions, replication) for name in missing])
            log.info("topics created", extra={"topics": missing, "partitions": partitions})
    finally:
        await admin.close()


async def coordinator_ready(settings: Settings, group_id: str, within: float = 60.0) -> None:
    """Wait until the broker names the coordinator of `group_id`. A broker just started makes its offsets topic
    (__consumer_offsets) on the first such request, and answers "not available" until it has: a consumer started
    before then logs each refused try as an error. After `within` seconds the consumer is left to go on trying."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **security_options(settings))
    await admin.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        while True:
            try:
                await admin.find_coordinator(group_id)
                return
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError) as error:
                if loop.time() >= deadline:
                    log.warning("no coordinator for group %s after %.0f s: %s", group_id, within, error)
                    return
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def partition_count(settings: Settings, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **security_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = described[0].get("partitions") if described else None
    if not partitions:
        raise LookupError(f"topic {topic} does not exist on {settings.bootstrap_servers}")
    return len(partitions)


# Kafka's default for a topic that sets no max.message.bytes of its own (the broker's message.max.bytes).
KAFKA_MESSAGE_LIMIT = 1_048_588


async def message_limit(settings: Settings, topic: str) -> int:
    """The largest record batch `topic` takes, in bytes (its max.message.bytes); Kafka's default when the
    credentials may not read the topic's configuration."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **security_options(settings))
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    for response in responses:
        for _error, _message, _kind, _name, entries, *_ in response.resources:
            for name, value, *_ in entries:
                if name == "max.message.bytes" and value is not None:
                    return int(value)
    log.info("max.message.bytes of %s not readable; taking Kafka's default %d", topic, KAFKA_MESSAGE_LIMIT)
    return KAFKA_MESSAGE_LIMIT


def security_options(settings: Settings) -> dict:
    """The aiokafka client options of the settings' security, as FastStream's broker derives them itself."""
    return parse_security(settings.security())


async def partitions_made(settings: Settings, topic: str) -> int:
    """The partition count of `topic`; when it does not exist yet, the service's topics are made first, as `serve`
    makes them (where ACLs let a producer only write, they exist already and nothing is created)."""
    try:
        return await partition_count(settings, topic)
    except LookupError:
        await ensure_topics(settings)
        return await partition_count(settings, topic)
