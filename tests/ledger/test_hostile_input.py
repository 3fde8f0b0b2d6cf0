"""Input an attacker would send, through `medledger settle` and `medledger ingest` as a person runs them: each bad
line refused with a reason and kept in a form PostgreSQL stores, no traceback, the rest of the file settled."""

from __future__ import annotations

import hashlib
import json
import random
import string

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.intake import MAX_LINE_BYTES
from tests.ledger.helpers import EXAMPLES, fetch

runner = CliRunner()


@pytest.fixture
def cli_db(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    return database


def _examples():
    return [line for line in (EXAMPLES / "nanjing.jsonl").read_text(encoding="utf-8").splitlines() if line]


def _first(lines, event_type):
    return next(json.loads(line) for line in lines if json.loads(line)["event_type"] == event_type)


def hostile_lines() -> list[bytes]:
    good = _examples()
    enrolled, visit = _first(good, "member.enrolled"), _first(good, "visit.submitted")
    huge = {**visit, "event_id": "huge", "visit_id": "HUGE-1", "facility_id": "F" * (5 * MAX_LINE_BYTES)}
    huge_line = json.dumps(huge).encode()
    other_huge = huge_line[:-20] + b'", "x": 1}'  # the same first bytes, another end
    noise = "".join(random.Random(7).choice(string.ascii_letters) for _ in range(100_000))
    return [
        json.dumps({**enrolled, "event_id": "nul-member", "member_id": enrolled["member_id"] + "\x00"}).encode(),
        b'{"event_id": "raw\x00nul", "event_type": "member.enrolled"}',
        huge_line,
        json.dumps({**visit, "event_id": "wide", "visit_id": "WIDE-1", "facility_id": "F" * 65}).encode(),
        # an index cannot hold the id, a record key should not be the member id
        json.dumps({"event_id": noise, "event_type": "visit.submitted", "member_id": noise}).encode(),
        b'{"event_id": "sur", "member_id": "\\udc00"}',
        huge_line,  # a repeat: acknowledged, not refused twice
        other_huge,
        *(line.encode() for line in good),
    ]


def _without_seq(records):
    return [{k: v for k, v in record.items() if k != "ledger_seq"} for record in records]


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_settle_and_ingest_refuse_hostile_lines_alike_and_settle_the_rest_as_alone(cli_db, tmp_path):
    lines = hostile_lines()
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_bytes(b"\n".join(lines) + b"\n")
    alone = tmp_path / "alone.jsonl"
    alone.write_bytes(b"\n".join(lines[8:]) + b"\n")

    settled = runner.invoke(app, ["settle", str(hostile)])
    assert settled.exit_code == 0, settled.output[-2000:]
    settled_alone = runner.invoke(app, ["settle", str(alone)])
    ingested = runner.invoke(app, ["ingest", str(hostile)])
    assert ingested.exit_code == 0, ingested.output[-2000:]
    assert "Traceback" not in ingested.stderr

    refusals = [(r["rejected"], r["reason"]) for r in _lines(settled.stdout) if "rejected" in r][:7]
    assert refusals == [
        ("nul-member", "invalid_event"),
        (2, "invalid_event"),
        (3, "too_large"),
        ("wide", "invalid_event"),
        (5, "invalid_event"),
        (6, "invalid_event"),
        (8, "too_large"),
    ]
    details = [r["detail"] for r in _lines(settled.stdout) if "rejected" in r][:7]
    assert details[0].startswith("member_id: must not contain a NUL character (U+0000)")
    assert details[1].startswith("invalid JSON: control character")
    assert hashlib.sha256(lines[2]).hexdigest() in details[2]
    assert details[3].startswith("facility_id: String should have at most 64 characters")
    assert details[4].startswith("event_id: String should have at most 64 characters")
    assert details[5].startswith("invalid JSON: lone leading surrogate")
    assert hashlib.sha256(lines[7]).hexdigest() in details[6]

    rest = [r for r in _lines(settled.stdout) if "rejected" not in r or r["rejected"] not in dict(refusals)]
    assert _without_seq(rest) == _without_seq(_lines(settled_alone.stdout))
    assert len(rest) > 50

    # ingest prints what settle prints, for the refusals as for the rest
    printed = _lines(ingested.stdout)
    assert [(r["rejected"], r["reason"], r["detail"]) for r in printed if "rejected" in r][:7] == [
        (r["rejected"], r["reason"], r["detail"]) for r in _lines(settled.stdout) if "rejected" in r
    ][:7]
    assert _without_seq([r for r in printed if "rejected" not in r]) == _without_seq(
        [r for r in rest if "rejected" not in r]
    )
    assert "rejected 7," in ingested.stderr and "duplicates 1," in ingested.stderr

    kept = fetch(cli_db, "SELECT source, reason, payload FROM ledger_rejections WHERE seq IS NULL ORDER BY 1")
    assert len(kept) == 7
    assert all("\x00" not in row["payload"] for row in kept)
    too_large = [row for row in kept if row["reason"] == "too_large"]
    assert len(too_large) == 2 and all(len(row["payload"]) < 2_000 for row in too_large)
    assert too_large[0]["payload"].startswith(lines[2][:1000].decode())

    (longest_key,) = fetch(cli_db, "SELECT max(length(key)) FROM outbox")[0]
    assert longest_key <= 40  # a refusal is keyed by the member its payload names only when that can be one

    # the whole file again: every line a repeat, nothing refused twice
    again = runner.invoke(app, ["ingest", str(hostile)])
    assert again.exit_code == 0 and again.stdout == ""
    assert "rejected 0," in again.stderr and "appended 0," in again.stderr
