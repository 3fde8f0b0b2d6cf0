"""`medledger produce`: publish a contract file to the event topic, as a hospital or enrolment system would: each
event keyed by its region code, on the partition the configured partitioner gives that key (see `partitioning`),
signed as its producer (its id, key id and signature in the record's headers: `ledger.authority`).

A line the broker would refuse for its size is reported (line number, size, the topic's limit) and skipped;
every other line is produced. A broker that cannot be reached is waited for, `Settings.broker_wait` seconds at
most, at start and while sending; then the command fails with `ProduceFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from consumers.partitioning import routing
from consumers.settings import Settings
from consumers.topics import message_limit, partition_count, partitions_made, security_options
from ledger.authority import Signer, signer_from

from .producer import HEADERS

T = TypeVar("T")

CHUNK = 5_000
log = logging.getLogger("medledger.produce")


class ProduceFailed(Exception):
    """The broker could not be reached, or did not take a record, within `Settings.broker_wait`."""


@dataclass(frozen=True)
class Skipped:
    line: int  # in the file, from 1
    size: int  # bytes of the record as sent
    limit: int  # the largest record the topic takes

    def __str__(self) -> str:
        return f"line {self.line} skipped: {self.size:,} bytes, over the topic's limit of {self.limit:,} bytes"


@dataclass
class Produced:
    sent: int = 0
    skipped: list[Skipped] = field(default_factory=list)


async def waiting_for_broker(settings: Settings, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()` again, with growing pauses, while the broker cannot be reached, `settings.broker_wait` seconds
    at most. A broker that can be reached but refuses the connection (credentials, certificates) is not waited
    for: its refusal is raised at once, after what the client logged about it. The client's log of attempts that
    found no broker at all is left out: the failure says it in one line."""
    deadline = time.monotonic() + settings.broker_wait
    pause = 0.5
    while True:
        with _held(logging.getLogger("aiokafka")) as held:
            try:
                return await attempt()
            except (KafkaConnectionError, KafkaTimeoutError, OSError) as error:
                if await _reachable(settings.bootstrap_servers):
                    held.let_through()
                    raise
                failure = error
        remaining = deadline - time.monotonic()
        if remaining <= 0:  # tried for the whole time set, the last try at its end
            raise ProduceFailed(
                f"cannot reach the broker at {settings.bootstrap_servers} to {what} "
                f"(waited {settings.broker_wait:g} s, MEDLEDGER_BROKER_WAIT_SECONDS): {failure}"
            ) from failure
        wait = min(pause, remaining)
        log.info("cannot reach the broker to %s; trying again in %.1f s: %s", what, wait, failure)
        await asyncio.sleep(wait)
        pause = min(pause * 2, 5.0)


class _Held(logging.Handler):
    def __init__(self, logger: logging.Logger):
        super().__init__()
        self.logger, self.records = logger, list[logging.LogRecord]()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def let_through(self) -> None:
        """What was held, logged as it would have been."""
        self.logger.removeHandler(self)
        self.logger.propagate = True
        for record in self.records:
            self.logger.handle(record)
        self.records = []


@contextlib.contextmanager
def _held(logger: logging.Logger) -> Iterator[_Held]:
    """`logger`'s records held back (not propagated) until let through; dropped if not."""
    held = _Held(logger)
    logger.addHandler(held)
    logger.propagate = False
    try:
        yield held
    finally:
        logger.removeHandler(held)
        logger.propagate = True


async def _reachable(bootstrap_servers: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection can be made to any of the bootstrap servers."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
        except (TimeoutError, OSError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


async def produce(
    settings: Settings,
    lines: Iterable[bytes],
    topic: str | None = None,
    signer: Signer | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    create_topics: bool = False,
) -> Produced:
    """Each line signed by `signer` (by default the producer and key of `settings`). `create_topics`: when the
    event topic does not exist yet, the service's topics are made as `serve` makes them (where ACLs let a producer
    only write to the topic, it exists already)."""
    signer = signer or signer_from(settings.producer, settings.producer_key, settings.producer_key_id)
    topic = topic or settings.events_topic
    if create_topics:
        await waiting_for_broker(settings, "create the topics", lambda: partitions_made(settings, topic))
    partitions = await waiting_for_broker(settings, f"describe {topic}", lambda: partition_count(settings, topic))
    limit = await waiting_for_broker(settings, f"read {topic}'s limit", lambda: message_limit(settings, topic))
    producer = await waiting_for_broker(settings, "connect", lambda: _started(settings, limit))
    produced = Produced()
    skip = on_skip or _log_skip
    pending: list[tuple[Skipped, asyncio.Future]] = []  # each sent record, as it would be reported if refused
    try:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            key, partition = routing(line, partitions, settings.partitioner)
            headers = HEADERS + [(name, value.encode()) for name, value in signer.headers(line).items()]
            sent = Skipped(number, DefaultRecordBatchBuilder.estimate_size_in_bytes(key, line, headers), limit)
            if sent.size > limit:
                produced.skipped.append(sent)
                skip(sent)
                continue
            pending.append((sent, await producer.send(topic, line, key=key, partition=partition, headers=headers)))
            if len(pending) >= CHUNK:
                await _confirmed(settings, pending, produced, skip)
                pending = []
        await _confirmed(settings, pending, produced, skip)
    finally:
        await producer.stop()
    return produced


async def _started(settings: Settings, limit: int) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,  # a retried batch neither duplicates nor reorders within its partition
        linger_ms=5,
        max_request_size=max(limit, 1_048_576),  # a record under the topic's limit is never refused here
        request_timeout_ms=int(settings.broker_wait * 1000),  # a send is retried for as long, then fails
        client_id="medledger-produce",
        **security_options(settings),
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


async def _confirmed(
    settings: Settings,
    pending: list[tuple[Skipped, asyncio.Future[Any]]],
    produced: Produced,
    on_skip: Callable[[Skipped], None],
) -> None:
    """Wait for the broker to take each record sent; one it refuses for its size is skipped as one over the limit
    before sending is (the size estimated here is the client's)."""
    results = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
    for (record, _), result in zip(pending, results, strict=True):
        if isinstance(result, MessageSizeTooLargeError):
            produced.skipped.append(record)
            on_skip(record)
        elif isinstance(result, KafkaError):
            raise ProduceFailed(
                f"the broker at {settings.bootstrap_servers} did not take line {record.line} within "
                f"{settings.broker_wait:g} s (MEDLEDGER_BROKER_WAIT_SECONDS): {result}"
            ) from result
        elif isinstance(result, BaseException):
            raise result
        else:
            produced.sent += 1


def _log_skip(skipped: Skipped) -> None:
    log.warning("%s", skipped)
