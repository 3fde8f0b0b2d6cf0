"""The `medledger` command line: settle is deterministic and never stops on bad input; schema is published."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ledger.cli import app
from tests import builders as b

EXAMPLES = Path(__file__).parents[1] / "examples"


def _settle(path: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["settle", str(path), *extra])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_settle_is_byte_identical_across_runs():
    first = _settle(EXAMPLES / "weihai.jsonl")
    assert first == _settle(EXAMPLES / "weihai.jsonl")
    assert any("settlement_id" in json.loads(line) for line in first.splitlines())


def test_settle_reports_each_malformed_line_and_settles_the_rest(tmp_path):
    b.fresh()
    good_visit = b.visit(
        "M1", b.NANJING, on="2023-03-01", items=[b.line("1000.00")], kind="community_health_center", level=1, grade=None
    )
    bad_money = b.visit("M1", b.NANJING, on="2023-03-02", items=[b.line("10.005")])
    unknown_field = {**b.visit("M1", b.NANJING, on="2023-03-03"), "colour": "red"}
    events = [
        b.as_line(b.enrolled("M1", b.NANJING)),
        "{not json",
        b.as_line(bad_money),
        b.as_line(good_visit),
        b.as_line(unknown_field),
        "",
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(events) + "\n", encoding="utf-8")
    outputs = [json.loads(line) for line in _settle(path).splitlines()]
    rejected = {r["rejected"]: r for r in outputs if "rejected" in r}
    assert set(rejected) == {2, bad_money["event_id"], unknown_field["event_id"]}
    assert all(r["reason"] == "invalid_event" for r in rejected.values())
    assert "items.0.amount" in rejected[bad_money["event_id"]]["detail"]
    assert "colour" in rejected[unknown_field["event_id"]]["detail"]
    (settled,) = [o for o in outputs if "settlement_id" in o]
    assert settled["visit_id"] == good_visit["visit_id"]
    assert settled["fund_paid"] == "500.00"  # 002 第十四条: community band 1, 1000 × 50%


def test_settle_reads_standard_input():
    text = (EXAMPLES / "nanjing.jsonl").read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["settle", "-"], input=text)
    assert result.exit_code == 0
    assert result.stdout == _settle(EXAMPLES / "nanjing.jsonl")


def test_a_bad_parameter_file_is_refused_with_a_message(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[policy."999999-2023"]\nx = "1"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["settle", str(EXAMPLES / "nanjing.jsonl"), "--parameters", str(path)])
    assert result.exit_code == 2
    assert "unknown policy ids" in result.output


def test_schema_command_writes_the_contract_schema(tmp_path):
    target = tmp_path / "schema.json"
    result = CliRunner().invoke(app, ["schema", "--output", str(target)])
    assert result.exit_code == 0
    schema = json.loads(target.read_text(encoding="utf-8"))
    assert schema["title"] == "medledger event contract v1"
    assert "visit.submitted" in json.dumps(schema)


def test_the_parameter_file_can_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("MEDLEDGER_PARAMETERS", raising=False)
    without = _settle(EXAMPLES / "inner-mongolia.jsonl")
    monkeypatch.setenv("MEDLEDGER_PARAMETERS", str(EXAMPLES / "params/150000-illustrative.toml"))
    with_file = _settle(EXAMPLES / "inner-mongolia.jsonl")
    assert with_file == _settle(
        EXAMPLES / "inner-mongolia.jsonl", "--parameters", str(EXAMPLES / "params/150000-illustrative.toml")
    )
    assert "policy_not_configured" in without and "policy_not_configured" not in with_file
