"""Identifiers derived from the event that caused a record, so a replay produces the same ids."""

import uuid

_NAMESPACE = uuid.UUID("5d0f5a8e-3c51-4a53-9a0e-6d1e2b7c9f10")


def settlement_id(region: str, event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"settlement/{region}/{event_id}"))


def movement_id(region: str, event_id: str, index: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"movement/{region}/{event_id}/{index}"))
