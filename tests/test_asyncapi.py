"""docs/asyncapi.json is the service's AsyncAPI document as FastStream generates it today:
`faststream docs gen --factory consumers.app:asyncapi_app -o docs/asyncapi.json` after a change."""

from __future__ import annotations

import json
from pathlib import Path

from consumers.app import asyncapi_app

DOCUMENT = Path(__file__).resolve().parents[1] / "docs/asyncapi.json"


def test_the_committed_asyncapi_document_is_current(monkeypatch):
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "MEDLEDGER_GROUP_ID", "MEDLEDGER_EVENTS_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MEDLEDGER_SETTLEMENTS_TOPIC", "MEDLEDGER_REJECTIONS_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    generated = json.loads(json.dumps(asyncapi_app().schema.to_specification().to_jsonable()))
    assert json.loads(DOCUMENT.read_text(encoding="utf-8")) == generated
    channels = {channel["address"] for channel in generated["channels"].values()}
    assert channels == {"medledger.events", "medledger.settlements", "medledger.rejections"}
    assert {"VisitSubmitted", "SettlementRecord", "MovementRecord", "RejectionRecord"} <= set(
        generated["components"]["schemas"]
    )
