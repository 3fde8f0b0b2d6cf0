"""Identifiers derived from the event that caused a record, so a replay produces the same ids.

Name-based UUIDs (RFC 4122 version 5 layout) built straight from SHA-1, without the cost of `uuid.UUID` objects.
"""

from hashlib import sha1

_NAMESPACE = bytes.fromhex("5d0f5a8e3c514a539a0e6d1e2b7c9f10")


def _uuid5(name: str) -> str:
    digest = bytearray(sha1(_NAMESPACE + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def settlement_id(region: str, event_id: str) -> str:
    return _uuid5(f"settlement/{region}/{event_id}")


def movement_id(region: str, event_id: str, member_id: str, index: int) -> str:
    return _uuid5(f"movement/{region}/{event_id}/{member_id}/{index}")
