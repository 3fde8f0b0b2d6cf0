"""Which partition of the event topic an event goes to: its region's.

The record key of an event is its region code, so a client's own partitioner, given nothing but the key, sends a
region's events to one partition, as one ordered stream as in a file: a year close is applied after every event of
its region produced before it and before every event after it, and a family payment after the payer's own
contributions. The ledger applies events one at a time under its append lock anyway, so spreading a region over
partitions would buy no parallelism, only races between its members.

Clients do not all hash a key alike, and the ledger must compute the partition a region's events are on exactly as
the producers do (`consumers.routing` refuses an event found elsewhere). Two partitioners are known here:

- `murmur2`: Kafka's own default (the Java client's `BuiltInPartitioner`, aiokafka's default, librdkafka's
  `murmur2_random` and `murmur2`): `(murmur2(key) & 0x7fffffff) % partitions`. The default.
- `crc32`: librdkafka's default for a keyed record (`consistent_random`, as `consistent`): `crc32(key) %
  partitions`. kcat, confluent-kafka (Python, Go, .NET) and node-rdkafka use it unless told
  `partitioner=murmur2_random`.

One deployment uses one of them (MEDLEDGER_PARTITIONER): a region's events are in order only if every producer
places them alike.
"""

from __future__ import annotations

import zlib

import orjson
from aiokafka.partitioner import murmur2

PARTITIONERS = ("murmur2", "crc32")
DEFAULT_PARTITIONER = "murmur2"


def partition_of(key: bytes, partitions: int, partitioner: str = DEFAULT_PARTITIONER) -> int:
    """The partition `partitioner` gives a record keyed `key`, as the clients named in the module compute it."""
    if partitioner == "murmur2":
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    if partitioner == "crc32":
        return zlib.crc32(key) % partitions
    raise ValueError(f"unknown partitioner {partitioner!r}: one of {', '.join(PARTITIONERS)}")


def partition_for(region: str, partitions: int, partitioner: str = DEFAULT_PARTITIONER) -> int:
    """The partition of a region's events."""
    return partition_of(region.encode(), partitions, partitioner)


def routing(line: bytes, partitions: int, partitioner: str = DEFAULT_PARTITIONER) -> tuple[bytes | None, int]:
    """(key, partition) of a contract line: the region code, and its partition. Input without a region (not a
    JSON object, or no region as a string) is sent as it is, without a key, so that the ledger refuses it with the
    reason and keeps it; its partition is the line's own hash, so that such lines spread."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    region = event.get("region") if isinstance(event, dict) else None
    if not isinstance(region, str):
        return None, partition_of(line, partitions, partitioner)
    key = region.encode()
    return key, partition_of(key, partitions, partitioner)
