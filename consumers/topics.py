"""The topics medledger reads and writes, created when missing."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
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


def security_options(settings: Settings) -> dict:
    """The aiokafka client options of the settings' security, as FastStream's broker derives them itself."""
    return parse_security(settings.security())
