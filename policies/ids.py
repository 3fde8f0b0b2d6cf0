"""Identifiers derived from the event that caused a record, so a replay produces the same ids.

Name-based UUIDs (RFC 4122 version 5 layout) built straight from SHA-1, without the cost of `uuid.UUID` objects.
"""

from hashlib import sha1

_NAMESPACE = bytes.fromhex("5d0f5a8e3c514a539a0e6d1e2b7c9f10")


def _uuid5(name: str) -> str:
    """The version-5 layout set on the hex digits themselves: digit 12 is the version (5), the top two bits of
    digit 16 the variant (10), looked up by the digit (parsing it as a number cost a third of the layout)."""
    h = sha1(_NAMESPACE + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def settlement_id(region: str, event_id: str) -> str:
    return _uuid5(f"settlement/{region}/{event_id}")


def movement_id(region: str, event_id: str, member_id: str, index: int) -> str:
    return _uuid5(f"movement/{region}/{event_id}/{member_id}/{index}")
