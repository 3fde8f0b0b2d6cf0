"""Which partition of the event topic an event goes to.

The record key is the member (the region for a region-level event), but the partition is chosen by region: the
partition Kafka's default partitioner gives the region as a key. A region's events are then one ordered stream,
as in a file, so a year close is applied after every event produced before it and before every event after it,
and a family payment after the payer's own contributions. A member's events are in order a fortiori. The ledger
applies events one at a time under its append lock anyway, so spreading one region over partitions would buy no
parallelism, only races between a region's members.
"""

from __future__ import annotations

import orjson
from aiokafka.partitioner import murmur2


def partition_for(region: str, partitions: int) -> int:
    return (murmur2(region.encode()) & 0x7FFFFFFF) % partitions


def routing(line: bytes, partitions: int) -> tuple[bytes | None, int]:
    """(key, partition) of a contract line. Unreadable input is sent as it is, without a key, so that the ledger
    refuses it with the reason and keeps it."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        return None, (murmur2(line) & 0x7FFFFFFF) % partitions
    region, member = event.get("region"), event.get("member_id")
    key = member if isinstance(member, str) else region if isinstance(region, str) else None
    partition = (
        partition_for(region, partitions) if isinstance(region, str) else (murmur2(line) & 0x7FFFFFFF) % partitions
    )
    return (key.encode() if key is not None else None), partition
