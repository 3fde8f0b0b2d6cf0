"""A record that arrives while serve's consumer is idle is taken as soon as it is fetched: the poll after an empty
one starts at once, with no pause between them in which the record would wait (FastStream's batch subscriber
sleeps as long as its poll timeout after each empty poll)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers.app import declare
from consumers.broker import make_broker
from consumers.settings import Settings
from consumers.topics import ensure_topics
from tests.kafka.streams import run

POLL_MS = 1_000  # long, so that a pause after an empty poll cannot pass for the broker's or the machine's delay


async def _taken_after(settings: Settings) -> float:
    """Seconds from sending a record, once a poll has come back empty, to the subscriber's poll returning it."""
    await ensure_topics(settings, 1)
    subscriber = declare(make_broker(settings, consumer_only=True), settings)
    subscriber.batch_timeout_ms = POLL_MS
    consumer = AIOKafkaConsumer(
        settings.events_topic, bootstrap_servers=settings.bootstrap_servers, group_id=None, auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await consumer.start()
    await producer.start()
    try:
        await consumer.seek_to_end()

        async def poll_until_taken() -> float:
            while not await subscriber.get_msg(consumer):
                pass
            return time.monotonic()

        polling = asyncio.create_task(poll_until_taken())
        # Sent once the first poll has waited its whole timeout and found nothing: while a pause after it would last.
        await asyncio.sleep(POLL_MS / 1000 * 1.3)
        assert not polling.done()
        sent = time.monotonic()
        await producer.send_and_wait(settings.events_topic, b"{}", partition=0)
        taken = await asyncio.wait_for(polling, 30)
        return taken - sent
    finally:
        await producer.stop()
        await consumer.stop()


def test_a_record_arriving_after_an_empty_poll_is_taken_without_waiting_out_a_pause(settings):
    waited = run(_taken_after(settings))
    # Paused as long as the poll timeout after the empty poll, the record would wait out the remaining 0.7 s.
    assert waited < 0.4, f"taken {waited:.3f} s after it was sent"
