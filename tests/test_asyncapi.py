"""docs/asyncapi.json is the service's AsyncAPI document as FastStream generates it today
(`faststream docs gen --factory consumers.app:asyncapi_app -o docs/asyncapi.json` after a change), and what it
says of each topic's records is what travels there."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from jsonschema import Draft202012Validator

from consumers.app import asyncapi_app
from ledger.offline import settle_lines

DOCUMENT = Path(__file__).resolve().parents[1] / "docs/asyncapi.json"


def test_the_committed_asyncapi_document_is_current(monkeypatch):
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "MEDLEDGER_GROUP_ID", "MEDLEDGER_EVENTS_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MEDLEDGER_SETTLEMENTS_TOPIC", "MEDLEDGER_REJECTIONS_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    generated = json.loads(json.dumps(asyncapi_app().schema.to_specification().to_jsonable()))
    assert _document() == generated
    channels = {channel["address"] for channel in generated["channels"].values()}
    assert channels == {"medledger.events", "medledger.settlements", "medledger.rejections"}
    assert {"VisitSubmitted", "SettlementMessage", "MovementMessage", "IncentiveMessage", "RejectionMessage"} <= set(
        generated["components"]["schemas"]
    )


def _document() -> dict:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


def _payload_validator(document: dict, address: str) -> Draft202012Validator:
    """The committed document's schema for what one record on `address` carries."""
    (channel,) = [channel for channel in document["channels"].values() if channel["address"] == address]
    (message,) = channel["messages"].values()
    pointer = message["$ref"].removeprefix("#/").split("/")
    found = document
    for step in pointer:
        found = found[step]
    return Draft202012Validator({**document, **found["payload"]})


def _problems(validator: Draft202012Validator, record) -> list[str]:
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(record)]


EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.jsonl"))


def test_each_record_of_the_event_topic_is_one_event_as_documented():
    events = _payload_validator(_document(), "medledger.events")
    lines = [line for path in EXAMPLES for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) > 100
    for line in lines:
        assert _problems(events, json.loads(line)) == [], line
    # a batch is many records, never one record holding an array
    assert _problems(events, [json.loads(lines[0])])


def test_every_output_record_is_valid_against_the_documented_topics():
    document = _document()
    settlements = _payload_validator(document, "medledger.settlements")
    rejections = _payload_validator(document, "medledger.rejections")
    kinds: Counter[str] = Counter()
    settled = None
    for path in EXAMPLES:
        lines = path.read_bytes().splitlines() + [b"not json", b'{"event_id": "x-1", "event_type": "visit.submitted"}']
        for record in settle_lines(lines):
            if "rejected" in record:
                kind, validator = "rejection", rejections
            else:
                kind = (
                    "reversal"
                    if record.get("reverses")
                    else next(name for name in ("settlement_id", "movement_id", "incentive") if name in record)
                )
                validator = settlements
            kinds[kind] += 1
            settled = settled or (record if kind == "settlement_id" else None)
            assert _problems(validator, record) == [], record
    assert set(kinds) == {"settlement_id", "reversal", "movement_id", "incentive", "rejection"}, kinds
    # the schema holds each field under both names: a settlement without its national name does not validate
    assert _problems(settlements, {k: v for k, v in settled.items() if k != "hifp_pay"})
    assert _problems(settlements, {**settled, "fund_paid": "12.5"})
