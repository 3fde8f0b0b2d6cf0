"""Inner Mongolia 150000 — `004` (内政办发〔2021〕82号, from 2022-10-01).

Policy notes §4: `004` sets the personal-account rules; outpatient benefit levels come from a parameter set that a
deployment supplies (the lead's illustrative `examples/params/150000-illustrative.toml`).
"""

import json
from decimal import Decimal
from pathlib import Path

from ledger.offline import settle_lines
from policies.parameters import load_parameters
from tests import builders as b

IM = b.INNER_MONGOLIA
PARAMS = Path(__file__).resolve().parents[2] / "examples" / "params" / "150000-illustrative.toml"


run = b.settle


def enrolled(member, **kw):
    kw.setdefault("on", "2022-10-01")
    return b.enrolled(member, IM, **kw)


def credits(out, event):
    return [(m["purpose"], m["amount"], m["balance_after"]) for m in b.caused_by(out, event)]


def test_in_service_credit_is_2_percent_of_base():
    m = "IM-INSERVICE"
    c1 = b.contribution(m, IM, "2022-10", "6000.00")
    c2 = b.contribution(m, IM, "2023-01", "6543.21")
    out = run(enrolled(m, contribution_base="6000.00"), c1, c2)
    # 004 二: 在职职工个人账户按本人参保缴费基数 2% 计入; the employer part goes to the pool
    assert credits(out, c1) == [("contribution", "120.00", "120.00")]
    assert b.caused_by(out, c1)[0]["policy_id"] == "150000-2022Q4"
    # 6543.21 × 2% = 130.8642 → 130.86
    assert credits(out, c2) == [("contribution", "130.86", "250.86")]
    assert b.caused_by(out, c2)[0]["policy_id"] == "150000-2023"


def test_retiree_fixed_credit_90_in_2022_q4_and_60_from_2023():
    m = "IM-RETIRED"
    p = [b.pension(m, IM, month, "4100.00") for month in ("2022-10", "2022-12", "2023-01", "2023-02")]
    out = run(enrolled(m, person_type="retired", birth_date="1955-09-09", monthly_pension="4100.00"), p)
    # 004 二: 3% × 2021 average pension [param 3000.00] = 90.00 from 2022-10; 2% = 60.00 from 2023
    assert [credits(out, e) for e in p] == [
        [("retiree_credit", "90.00", "90.00")],
        [("retiree_credit", "90.00", "180.00")],
        [("retiree_credit", "60.00", "240.00")],
        [("retiree_credit", "60.00", "300.00")],
    ]


def test_account_events_before_2022_10_not_configured():
    m, r = "IM-EARLY", "IM-EARLY-RET"
    c = b.contribution(m, IM, "2022-09", "6000.00")
    p = b.pension(r, IM, "2022-09", "4000.00")
    ok = b.contribution(m, IM, "2022-10", "6000.00")
    out = run(
        enrolled(m, on="2022-01-01"),
        enrolled(r, on="2022-01-01", person_type="retired", birth_date="1956-01-01"),
        p,
        c,
        ok,
    )
    # notes §0: Inner Mongolia policy starts 2022-10-01
    assert b.reason(out, c) == "policy_not_configured"
    assert b.reason(out, p) == "policy_not_configured"
    assert credits(out, ok) == [("contribution", "120.00", "120.00")]


def test_mid_year_retirement_switches_credit_next_month():
    m = "IM-RETIRING"
    c = b.contribution(m, IM, "2023-03", "5000.00")
    p = b.pension(m, IM, "2023-04", "3900.00")
    out = run(
        enrolled(m, birth_date="1963-03-01", contribution_base="5000.00"),
        b.retired(m, IM, on="2023-03-15", pension="3900.00"),
        c,
        p,
    )
    # 2% of 5000 for March; 次月起 the fixed 60.00 (004 二, notes §4)
    assert credits(out, c) == [("contribution", "100.00", "100.00")]
    assert credits(out, p) == [("retiree_credit", "60.00", "160.00")]


def test_visit_without_parameters_is_rejected_and_nothing_is_lost():
    m = "IM-VISIT"
    v = b.visit(m, IM, on="2023-03-01", items=[b.line("800.00")])
    after = b.contribution(m, IM, "2023-03", "6000.00")
    out = run(enrolled(m), v, after)
    r = b.rejected(out, v)
    assert r is not None and r["reason"] == "policy_not_configured" and r["detail"]
    payload = json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
    assert payload["visit_id"] == v["visit_id"] and payload["items"][0]["amount"] == "800.00"
    assert b.settlements(out) == []
    # the stream goes on
    assert credits(out, after) == [("contribution", "120.00", "120.00")]


def test_account_purposes():
    m = "IM-PURPOSES"
    big = b.payment(m, IM, "50.00", purpose="large_amount_premium", on="2023-03-01")
    ltc = b.payment(m, IM, "20.00", purpose="ltc_premium", on="2023-03-02")
    supp = b.payment(m, IM, "30.00", purpose="supplementary_insurance", on="2023-03-03")
    check = b.payment(m, IM, "30.00", purpose="health_checkup", on="2023-03-04")
    gym = b.payment(m, IM, "30.00", purpose="fitness", on="2023-03-05")
    out = run(enrolled(m), b.contribution(m, IM, "2023-02", "10000.00"), big, ltc, supp, check, gym)
    # notes §5: 职工大额医疗费用补助 and 长期护理保险 allowed in Inner Mongolia (004 三) ...
    assert credits(out, big) == [("large_amount_premium", "50.00", "150.00")]
    assert credits(out, ltc) == [("ltc_premium", "20.00", "130.00")]
    # ... commercial insurance, check-ups and fitness are not
    assert [b.reason(out, e) for e in (supp, check, gym)] == ["purpose_not_allowed"] * 3
    assert [b.caused_by(out, e) for e in (supp, check, gym)] == [[], [], []]


def test_resident_visit_not_configured():
    m = "IM-RESIDENT"
    v = b.visit(m, IM, on="2023-03-01")
    out = run(enrolled(m, person_type="resident_tier1"), v)
    # readings: the seeds cover employees only outside Weihai
    assert b.reason(out, v) == "policy_not_configured"


def _parameters():
    return load_parameters(PARAMS)


def test_visits_settle_with_the_illustrative_parameter_file():
    params = _parameters()
    m = "IM-WITH-PARAMS"
    v1 = b.visit(m, IM, on="2023-03-01", items=[b.line("800.00")], level=1, grade=None, kind="community_health_center")
    v2 = b.visit(m, IM, on="2023-03-02", items=[b.line("1500.00")])
    r = b.visit("IM-RESIDENT-P", IM, on="2023-03-01")
    out = run(enrolled(m), enrolled("IM-RESIDENT-P", person_type="resident_tier1"), v1, v2, r, parameters=params)
    for v in (v1, v2):
        s = b.settled(out, v)
        b.assert_identities(s)
        assert s["policy_id"] == "150000-2023"
        assert Decimal("0") <= Decimal(s["fund_paid"]) <= Decimal(s["in_policy_amount"])
    # a parameter set for employees does not make resident visits payable
    assert b.reason(out, r) == "policy_not_configured"


def test_reversal_with_parameters_restores_state():
    params = _parameters()
    m = "IM-REVERSE"
    v1 = b.visit(m, IM, on="2023-03-01", items=[b.line("2000.00")])
    rev = b.reversed_visit(m, IM, v1["visit_id"], on="2023-03-02")
    v2 = b.visit(m, IM, on="2023-03-03", items=[b.line("2000.00")])
    out = run(enrolled(m), v1, rev, v2, parameters=params)
    s1, s2 = b.settled(out, v1), b.settled(out, v2)
    b.assert_reverses(b.reversal_of(out, v1), s1)
    # settles exactly as if the reversed visit never happened
    assert b.core(s2) == b.core(s1) and s2["limit_remaining"] == s1["limit_remaining"]


def test_without_parameters_even_a_visit_without_fund_payment_is_refused():
    b.fresh()
    m = "IM-NOPARAMS"
    visits = [
        b.visit(m, b.INNER_MONGOLIA, on="2023-03-01", designated=False),
        b.visit(m, b.INNER_MONGOLIA, on="2023-03-02", inpatient=True),
        b.visit(m, b.INNER_MONGOLIA, on="2023-03-03"),
    ]
    out = settle_lines(b.lines(b.enrolled(m, b.INNER_MONGOLIA), *visits))
    assert [b.reason(out, v) for v in visits] == ["policy_not_configured"] * 3
    assert not b.settlements(out)
