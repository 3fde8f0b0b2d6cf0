"""A Kafka record as the ledger receives it: decoded with the same code as a line of a file."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRecord

from ledger.authority import from_headers
from ledger.intake import Incoming, decode

from .routing import routed


def position(record: ConsumerRecord) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


def incoming(record: ConsumerRecord) -> Incoming:
    """Unreadable input is named by its topic, partition and offset in the rejection stream; an event found off its
    region's partition is refused (`routing`)."""
    value = record.value if record.value is not None else b""
    where = position(record)
    item = routed(decode(value, f"kafka:{where}", where, structs=True), record)
    item.claimed = from_headers(record.headers, value)  # checked by the ledger against the producers file
    return item


def spans(records: Iterable[Any]) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition of the batch: the offset of its first record and where the partition resumes after it."""
    found: dict[tuple[str, int], tuple[int, int]] = {}
    for record in records:
        key = (record.topic, record.partition)
        first, after = found.get(key, (record.offset, record.offset + 1))
        found[key] = (min(first, record.offset), max(after, record.offset + 1))
    return found
