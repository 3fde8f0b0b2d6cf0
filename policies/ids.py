"""Identifiers derived from the event that caused a record, so a replay produces the same ids.

Name-based UUIDs (RFC 4122 version 5 layout) built straight from SHA-1, without the cost of `uuid.UUID` objects.
"""

from hashlib import sha1

_NAMESPACE = bytes.fromhex("5d0f5a8e3c514a539a0e6d1e2b7c9f10")


def _uuid5(name: str) -> str:
    """The version-5 layout set on the hex digits themselves: digit 12 is the version (5), the top two bits of
    digit 16 the variant (10)."""
    h = sha1(_NAMESPACE + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


_VARIANT = "89ab"


def settlement_id(region: str, event_id: str) -> str:
    return _uuid5(f"settlement/{region}/{event_id}")


def movement_id(region: str, event_id: str, member_id: str, index: int) -> str:
    return _uuid5(f"movement/{region}/{event_id}/{member_id}/{index}")
