"""The example event files in examples/ are valid contract streams that replay without surprises."""

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.offline import settle_lines
from policies.parameters import load_parameters
from tests import builders as b

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REGION_OF = {
    "ningxia.jsonl": b.NINGXIA,
    "weihai.jsonl": b.WEIHAI,
    "nanjing.jsonl": b.NANJING,
    "inner-mongolia.jsonl": b.INNER_MONGOLIA,
}
PARAMS = EXAMPLES / "params" / "150000-illustrative.toml"


def read(name):
    return (EXAMPLES / name).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", sorted(REGION_OF))
def test_example_file_is_an_ordered_stream_of_unique_events(name):
    events = [json.loads(text) for text in read(name)]
    assert len({e["event_id"] for e in events}) == len(events)
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert times == sorted(times)
    assert {e["region"] for e in events} == {REGION_OF[name]}
    visits = [e["visit_id"] for e in events if e["event_type"] == "visit.submitted"]
    assert len(set(visits)) == len(visits)
    assert {e["visit_id"] for e in events if e["event_type"] == "visit.reversed"} <= set(visits)
    kinds = {e["event_type"] for e in events}
    assert {
        "member.enrolled",
        "visit.submitted",
        "visit.reversed",
        "family.aid_authorized",
        "account.payment_requested",
        "member.retired",
        "period.year_closed",
    } <= kinds
    assert len({e["member_id"] for e in events if "member_id" in e}) >= 3


def _check_replay(out, lines):
    events = [json.loads(text) for text in lines]
    visit_events = [e for e in events if e["event_type"] in ("visit.submitted", "visit.reversed")]
    assert len(b.settlements(out)) == len(visit_events)
    for s in b.settlements(out):
        b.assert_identities(s)
    for m in b.movements(out):
        assert Decimal(m["amount"]) > 0 and Decimal(m["balance_after"]) >= 0, m


@pytest.mark.parametrize("name", ["ningxia.jsonl", "weihai.jsonl", "nanjing.jsonl"])
def test_example_replays_without_rejections(name):
    lines = read(name)
    out = settle_lines(lines)
    assert b.rejections(out) == []
    _check_replay(out, lines)


def test_nanjing_example_earns_a_health_incentive_for_the_member_with_no_net_fund_payment():
    out = settle_lines(read("nanjing.jsonl"))
    # 32010619850226T001 had only 第十五条 fee payments and a reversed visit in 2023 (002 第七条)
    credits = b.movements(out, "32010619850226T001", "health_incentive")
    assert [(c["amount"], c["policy_id"]) for c in credits] == [("200.00", "320100-2023")]


def test_inner_mongolia_example_without_parameters_rejects_only_visits():
    lines = read("inner-mongolia.jsonl")
    out = settle_lines(lines)
    assert b.settlements(out) == []
    assert {r["reason"] for r in b.rejections(out)} <= {"policy_not_configured", "unknown_visit"}
    visit_ids = {json.loads(t)["event_id"] for t in lines if json.loads(t)["event_type"] == "visit.submitted"}
    assert {r["rejected"] for r in b.rejections(out) if r["reason"] == "policy_not_configured"} == visit_ids


def test_inner_mongolia_example_with_parameters_replays_without_rejections():
    lines = read("inner-mongolia.jsonl")
    out = settle_lines(lines, parameters=load_parameters(PARAMS))
    assert b.rejections(out) == []
    _check_replay(out, lines)
