"""The published JSON Schema of the input contract, generated from the models."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from .event import Event

TITLE = "medledger event contract v1"


def contract_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for one input event; same output on every call."""
    generated = TypeAdapter(Event).json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": TITLE,
        "description": "One event per Kafka message or JSON Lines line; money in yuan.",
        **generated,
    }
