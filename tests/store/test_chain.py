"""The canonical bytes the hash chain covers."""

from __future__ import annotations

import json

from ledger.chain import canonical
from ledger.contract import decode_event
from ledger.contract.examples import example


def test_canonical_bytes_are_sorted_compact_utf8_json():
    event = decode_event({**example("member.enrolled"), "member_id": "张三-001"})
    text = canonical(event)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert "张三-001" in text and decode_event(json.loads(text)) == event
