"""Weihai 371000 — `001` (威海市基本医疗保险门诊共济保障机制实施细则, 2022-07-01 to 2027-06-30).

Policy notes §2. Every Weihai limit caps the eligible expense above the deductible (`001 第十条`), so
`limit_remaining` is in capped-base terms. Default facility: designated tier-3 general hospital.
"""

from decimal import Decimal

from tests import builders as b

WH = b.WEIHAI


run = b.settle


def enrolled(member, **kw):
    kw.setdefault("on", "2023-01-01")
    return b.enrolled(member, WH, **kw)


drug = b.drug


TIER1 = dict(level=1, grade=None)
TIER2 = dict(level=2, grade="A")


def bonus(out, member, year):
    """(before, after) of the Weihai ratio bonus evaluated at the close of `year`, as Decimals."""
    found = b.incentives(out, member, year)
    assert len(found) == 1, found
    assert found[0]["incentive"] == "weihai_ratio_bonus" and found[0]["region"] == WH
    return Decimal(found[0]["before"]), Decimal(found[0]["after"])


# --- worked example (policy notes §2) ----------------------------------------------------------------------------


def test_worked_example_deductible_limit_and_tcm():
    m = "WH-WORKED"
    v1 = b.visit(m, WH, on="2023-03-01", items=drug("500.00"), **TIER1)
    v2 = b.visit(m, WH, on="2023-04-01", items=drug("1000.00"))  # tier 3
    v3 = b.visit(m, WH, on="2023-05-01", kind="tcm_hospital", items=drug("1000.00"), **TIER2)
    out = run(enrolled(m), v1, v2, v3)
    assert b.rejections(out) == []
    # 001 第十一条: tier 1 threshold 300, base 200, in-service 70% → 140
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("300.00", "140.00", "0.00", "360.00")
    assert (s1["fund_ratio"], s1["copay_amount"], s1["limit_remaining"]) == ("0.7000", "60.00", "1400.00")
    assert (s1["policy_id"], str(s1["insutype"]), str(s1["fund_pay_type"])) == ("371000-2023", "310", "310100")
    # cumulative threshold: tier 3 700 − 300 = 400 due; base 600 (used 800); 50% → 300
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("400.00", "300.00", "0.00", "700.00")
    assert (s2["fund_ratio"], s2["limit_remaining"]) == ("0.5000", "800.00")
    # 001 第十八条: tier-2 TCM → tier-1 rules: threshold met; base min(1000, 1600 − 800) = 800 × 70% = 560; over 200
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("0.00", "560.00", "200.00", "440.00")
    assert (s3["fund_ratio"], s3["copay_amount"], s3["limit_remaining"]) == ("0.7000", "240.00", "0.00")
    for s in (s1, s2, s3):
        b.assert_identities(s)


# --- general outpatient ------------------------------------------------------------------------------------------


def test_2022_half_year_limit_exhausted_then_2023_limit():
    m = "WH-2022"
    v1 = b.visit(m, WH, on="2022-08-01", items=drug("2000.00"), **TIER1)
    v2 = b.visit(m, WH, on="2022-09-01", items=drug("100.00"), **TIER1)
    v3 = b.visit(m, WH, on="2023-01-10", items=drug("2000.00"), **TIER1)
    out = run(enrolled(m, on="2022-07-01"), v1, v2, v3)
    # 001 第十一条: 2022 employee limit 800: base min(2000 − 300, 800) = 800 × 70% = 560; over 900
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("300.00", "560.00", "900.00", "1440.00")
    assert (s1["policy_id"], s1["limit_remaining"]) == ("371000-2022", "0.00")
    # limit used up: all 100 over the limit
    assert b.core(b.settled(out, v2)) == ("0.00", "0.00", "100.00", "100.00")
    # 1 January: counters restart; 2023 limit 1600: base min(1700, 1600) × 70% = 1120; over 100
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("300.00", "1120.00", "100.00", "880.00") and s3["policy_id"] == "371000-2023"


def test_residents_tiers_and_2022_limits():
    t1, t2, minor = "WH-RES-T1", "WH-RES-T2", "WH-RES-MINOR"
    v1 = b.visit(t1, WH, on="2022-08-01", items=drug("500.00"))  # tier 3, 2022
    v2 = b.visit(t2, WH, on="2023-02-01", items=drug("800.00"), **TIER2)
    v3 = b.visit(minor, WH, on="2023-02-01", items=drug("300.00"), **TIER1)
    out = run(
        enrolled(t1, on="2022-07-01", person_type="resident_tier1"),
        v1,
        enrolled(t2, person_type="resident_tier2"),
        enrolled(minor, person_type="resident_minor", birth_date="2015-03-03"),
        v2,
        v3,
    )
    # 001 第十一条: residents tier 3 threshold 200; 2022 tier-1 limit 100; 30% → base 100 × 30% = 30; over 200
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("200.00", "30.00", "200.00", "470.00")
    assert (str(s1["insutype"]), str(s1["fund_pay_type"])) == ("390", "390100")
    # tier 2 threshold 150; base min(650, 400) = 400 × 40% = 160; over 250
    assert b.core(b.settled(out, v2)) == ("150.00", "160.00", "250.00", "640.00")
    # 未成年居民 = 一档: tier 1 threshold 100, base min(200, 200) × 50% = 100
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("100.00", "100.00", "0.00", "200.00") and s3["limit_remaining"] == "0.00"


def test_tcm_hospitals_employees():
    m, r = "WH-TCM-EMP", "WH-TCM-RET"
    v1 = b.visit(m, WH, on="2023-03-01", kind="tcm_hospital", items=drug("1000.00"))  # tier 3
    v2 = b.visit(m, WH, on="2023-03-02", kind="tcm_hospital", items=drug("500.00"), **TIER1)
    v3 = b.visit(r, WH, on="2023-03-01", kind="tcm_hospital", items=drug("1000.00"), **TIER2)
    out = run(
        enrolled(m), enrolled(r, person_type="retired", birth_date="1958-02-02", monthly_pension="3500.00"), v1, v2, v3
    )
    # 001 第十八条: tier-3 TCM → tier-2 threshold 500 and ratio 60%: (1000 − 500) × 60% = 300
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("500.00", "300.00", "0.00", "700.00")
    assert (s1["fund_ratio"], s1["limit_remaining"]) == ("0.6000", "1100.00")
    # tier-1 TCM stays tier 1: threshold 300 already met, 70%: 500 × 70% = 350
    assert b.core(b.settled(out, v2)) == ("0.00", "350.00", "0.00", "150.00")
    # retired at a tier-2 TCM → tier-1: threshold 300, 75%: 700 × 75% = 525
    assert b.core(b.settled(out, v3)) == ("300.00", "525.00", "0.00", "475.00")


def test_tcm_hospitals_residents():
    t2, t1 = "WH-TCM-RES2", "WH-TCM-RES1"
    v1 = b.visit(t2, WH, on="2023-03-01", kind="tcm_hospital", items=drug("500.00"))  # tier 3
    v2 = b.visit(t1, WH, on="2023-03-01", kind="tcm_hospital", items=drug("300.00"), **TIER2)
    out = run(enrolled(t2, person_type="resident_tier2"), enrolled(t1, person_type="resident_tier1"), v1, v2)
    # 001 第十八条: residents take the lower tier's threshold (150) and the same tier's ratio + 5 (30 + 5 = 35%)
    # base min(350, 400) = 350 × 35% = 122.50
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("150.00", "122.50", "0.00", "377.50")
    assert (s1["fund_ratio"], s1["limit_remaining"]) == ("0.3500", "50.00")
    # tier-2 TCM: threshold 100 (tier 1), ratio 40 + 5 = 45%; base min(200, 200) × 45% = 90
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("100.00", "90.00", "0.00", "210.00") and s2["fund_ratio"] == "0.4500"


def test_village_and_ungraded_facilities_use_tier_1():
    m = "WH-VILLAGE"
    v = b.visit(m, WH, on="2023-03-01", level=0, grade=None, kind="village_clinic", items=drug("500.00"))
    # 001 第十一条: 一级含一级以下及未定级: threshold 300, 70%: 200 × 70% = 140
    assert b.core(b.settled(run(enrolled(m), v), v)) == ("300.00", "140.00", "0.00", "360.00")


def test_type_change_restarts_deductible_and_limit():
    m = "WH-TYPECHANGE"
    v1 = b.visit(m, WH, on="2023-03-01", items=drug("600.00"), **TIER1)
    change = b.type_changed(m, WH, on="2023-07-01", person_type="in_service")
    v2 = b.visit(m, WH, on="2023-07-01", at="15:00:00", items=drug("500.00"), **TIER1)
    out = run(enrolled(m, person_type="resident_tier2"), v1, change, v2)
    # resident tier 2 at tier 1: threshold 100; base min(500, 400) = 400 × 50% = 200; over 100
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("100.00", "200.00", "100.00", "400.00") and str(s1["insutype"]) == "390"
    # 001 第十一条 起付标准和年度支付限额重新起算: employee threshold 300 in full; base 200 × 70% = 140; 1600 − 200
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("300.00", "140.00", "0.00", "360.00")
    assert (str(s2["insutype"]), s2["limit_remaining"]) == ("310", "1400.00")


def test_temporary_out_of_area_first_10_percent():
    m, lt, rnd = "WH-TEMP", "WH-LONGTERM", "WH-TEMP-ROUND"
    v1 = b.visit(m, WH, on="2023-03-01", out_of_area="temporary_filed", items=drug("2000.00"))  # tier 3
    v2 = b.visit(m, WH, on="2023-03-05", out_of_area="temporary_unfiled", items=drug("1000.00"), **TIER1)
    v3 = b.visit(lt, WH, on="2023-03-01", out_of_area="long_term", items=drug("2000.00"))
    v4 = b.visit(rnd, WH, on="2023-03-01", out_of_area="temporary_unfiled", items=drug("1234.56"), **TIER1)
    out = run(enrolled(m), enrolled(lt), enrolled(rnd), v1, v2, v3, v4)
    # 001 第十九条: first 10% = 200 (counts toward the limit); 1800: threshold 700; base min(1100, 1600 − 200)
    # = 1100 × 50% = 550; copay = 200 + 550 = 750; limit left 1600 − 200 − 1100 = 300
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("700.00", "550.00", "0.00", "1450.00")
    assert (s1["copay_amount"], s1["limit_remaining"]) == ("750.00", "300.00")
    # first 100 (limit left 200); 900: threshold met; base min(900, 200) = 200 × 70% = 140; over 700
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "140.00", "700.00", "860.00")
    assert (s2["copay_amount"], s2["limit_remaining"]) == ("160.00", "0.00")
    # long-term residents are settled normally: (2000 − 700) × 50% = 650
    assert b.core(b.settled(out, v3)) == ("700.00", "650.00", "0.00", "1350.00")
    # 10% of 1234.56 = 123.456 → 123.46; 1111.10 − 300 = 811.10 × 70% = 567.77; limit 1600 − 123.46 − 811.10
    s4 = b.settled(out, v4)
    assert b.core(s4) == ("300.00", "567.77", "0.00", "666.79")
    assert (s4["copay_amount"], s4["limit_remaining"]) == ("366.79", "665.44")


def test_designated_facility_restriction():
    m, free = "WH-REGISTERED", "WH-UNREGISTERED"
    elsewhere = b.visit(m, WH, on="2023-03-01", facility="WH-H-0099", items=drug("500.00"), **TIER1)
    own = b.visit(m, WH, on="2023-03-02", facility="WH-H-0001", items=drug("500.00"), **TIER1)
    other = b.visit(free, WH, on="2023-03-01", facility="WH-H-0099", items=drug("500.00"), **TIER1)
    out = run(enrolled(m, designated_facilities=["WH-H-0001"]), enrolled(free), elsewhere, own, other)
    # 001 第二十八条: not the member's registered facility → no fund payment, no accumulator moves
    assert b.core(b.settled(out, elsewhere)) == ("0.00", "0.00", "0.00", "500.00")
    # full threshold still due at the registered facility: 200 × 70% = 140
    assert b.core(b.settled(out, own)) == ("300.00", "140.00", "0.00", "360.00")
    # no registration, no restriction
    assert b.core(b.settled(out, other)) == ("300.00", "140.00", "0.00", "360.00")


def test_retirement_mid_year_switches_ratio_next_month_counters_run_on():
    m = "WH-RETIRING"
    v1 = b.visit(m, WH, on="2023-05-25", items=drug("500.00"), **TIER1)
    v2 = b.visit(m, WH, on="2023-06-02", items=drug("500.00"), **TIER1)
    out = run(enrolled(m, birth_date="1963-05-01"), b.retired(m, WH, on="2023-05-20", pension="3800.00"), v1, v2)
    # notes §0 次月起: May still in service 70%: 200 × 70% = 140
    assert b.core(b.settled(out, v1)) == ("300.00", "140.00", "0.00", "360.00")
    # June retired 75%; retirement is not an insurance-type change, so threshold and limit run on: 500 × 75%
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "375.00", "0.00", "125.00") and s2["limit_remaining"] == "900.00"


# --- chronic -----------------------------------------------------------------------------------------------------


def test_employee_chronic_own_deductible_and_pool_is_sum_of_caps():
    m = "WH-CHRONIC"
    certs = [
        b.chronic_certified(m, WH, "E11", "2000.00", on="2023-01-01"),
        b.chronic_certified(m, WH, "I10", "1000.00", on="2023-01-01"),
        b.chronic_certified(m, WH, "N18", "3000.00", on="2023-01-01"),
    ]
    c1 = b.chronic_visit(m, WH, "N18", on="2023-03-01", items=drug("7000.00"))  # tier 3
    g1 = b.visit(m, WH, on="2023-03-02", items=drug("500.00"), **TIER1)
    out = run(enrolled(m), certs, c1, g1)
    # 001 第十四条/第十五条: threshold 900; pool 2000 + 1000 + 3000 = 6000 (no 80% rule in Weihai);
    # base min(6100, 6000) = 6000 × inpatient tier-3 80% [param] = 4800; over 100
    s1 = b.settled(out, c1)
    assert b.core(s1) == ("900.00", "4800.00", "100.00", "2200.00")
    assert (s1["fund_pool"], s1["limit_remaining"], s1["copay_amount"]) == ("chronic", "0.00", "1200.00")
    # 第十六条 彼此间不调剂使用; general counter is separate: threshold 300, 200 × 70% = 140, limit 1400 left
    s2 = b.settled(out, g1)
    assert b.core(s2) == ("300.00", "140.00", "0.00", "360.00") and s2["limit_remaining"] == "1400.00"


def test_employee_chronic_tcm_and_retired_ratios():
    m, r = "WH-CHRONIC-TCM", "WH-CHRONIC-RET"
    c1 = b.chronic_visit(m, WH, "E11", on="2023-03-01", kind="tcm_hospital", items=drug("1900.00"))  # tier 3
    c2 = b.chronic_visit(r, WH, "E11", on="2023-03-01", items=drug("1900.00"), **TIER1)
    out = run(
        enrolled(m),
        enrolled(r, person_type="retired", birth_date="1956-06-06", monthly_pension="3500.00"),
        b.chronic_certified(m, WH, "E11", "5000.00", on="2023-01-01"),
        b.chronic_certified(r, WH, "E11", "5000.00", on="2023-01-01"),
        c1,
        c2,
    )
    # readings (001 第十八条 for chronic): tier-3 TCM → tier-2 inpatient ratio 85%: (1900 − 900) × 85% = 850
    assert b.core(b.settled(out, c1)) == ("900.00", "850.00", "0.00", "1050.00")
    # retired +5 at tier 1: 95%: 1000 × 95% = 950
    assert b.core(b.settled(out, c2)) == ("900.00", "950.00", "0.00", "950.00")


def test_resident_common_and_special_chronic_have_own_counters_and_limits():
    m = "WH-RES-CHRONIC"
    c1 = b.chronic_visit(m, WH, "I10", on="2023-03-01", items=drug("400.00"), **TIER2)
    c2 = b.chronic_visit(m, WH, "I10", on="2023-03-10", items=drug("500.00"), **TIER1)
    s1v = b.chronic_visit(m, WH, "N18", on="2023-04-01", items=drug("2000.00"))  # tier 3
    s2v = b.chronic_visit(m, WH, "N18", on="2023-04-10", items=drug("1000.00"), **TIER1)
    out = run(
        enrolled(m, person_type="resident_tier1"),
        b.chronic_certified(m, WH, "I10", "500.00", kind="common", on="2023-01-01"),
        b.chronic_certified(m, WH, "N18", "5000.00", kind="special", on="2023-01-01"),
        c1,
        c2,
        s1v,
        s2v,
    )
    # 001 第十四条/第十五条: common: threshold 100, 60%, tier-1 limit 500: base 300 × 60% = 180, 200 left
    s = b.settled(out, c1)
    assert b.core(s) == ("100.00", "180.00", "0.00", "220.00") and s["limit_remaining"] == "200.00"
    # base min(500, 200) × 60% = 120; over 300
    assert b.core(b.settled(out, c2)) == ("0.00", "120.00", "300.00", "380.00")
    # special: own threshold 300; tier-3 resident inpatient 60% [param]: 1700 × 60% = 1020; pool 5000 − 1700
    s = b.settled(out, s1v)
    assert b.core(s) == ("300.00", "1020.00", "0.00", "980.00") and s["limit_remaining"] == "3300.00"
    # tier 1 85% [param]: 1000 × 85% = 850
    s = b.settled(out, s2v)
    assert b.core(s) == ("0.00", "850.00", "0.00", "150.00") and s["limit_remaining"] == "2300.00"


# --- incentive (001 第十二条) --------------------------------------------------------------------------------------


def test_incentive_half_point_then_one_point_then_used_and_reset():
    m = "WH-BONUS"
    v23 = b.visit(m, WH, on="2023-03-01", items=drug("700.00"), **TIER1)
    v25 = b.visit(m, WH, on="2025-02-01", items=drug("1000.00"), **TIER1)
    out = run(
        enrolled(m, on="2022-07-01"),
        b.year_closed(WH, 2022),
        v23,
        b.year_closed(WH, 2023),
        b.year_closed(WH, 2024),
        v25,
        b.year_closed(WH, 2025),
    )
    # 2022 not a whole year of enrollment → nothing earned
    assert all(Decimal(i["after"]) == 0 for i in b.incentives(out, m, 2022))
    # 2023: 400 × 70% = 280 paid, base 400 ≤ 50% of 1600 → +0.5
    assert b.settled(out, v23)["fund_paid"] == "280.00"
    assert bonus(out, m, 2023) == (Decimal("0"), Decimal("0.5"))
    # 2024: no general fund payment → +1.0
    assert bonus(out, m, 2024) == (Decimal("0.5"), Decimal("1.5"))
    # 2025: 70% + 1.5 points = 71.5%: 700 × 71.5% = 500.50
    s = b.settled(out, v25)
    assert (s["fund_paid"], s["fund_ratio"], s["policy_id"]) == ("500.50", "0.7150", "371000-2024")
    # 享受了激励待遇 → reset, and 2025 earns nothing
    assert bonus(out, m, 2025) == (Decimal("1.5"), Decimal("0"))


def test_incentive_one_point_used_on_general_not_on_chronic_then_reset():
    m = "WH-BONUS-1"
    g = b.visit(m, WH, on="2024-03-01", items=drug("1000.00"), **TIER1)
    c = b.chronic_visit(m, WH, "E11", on="2024-03-02", items=drug("2000.00"))  # tier 3
    out = run(
        enrolled(m, on="2022-07-01"),
        b.chronic_certified(m, WH, "E11", "5000.00", on="2022-07-01"),
        b.year_closed(WH, 2022),
        b.year_closed(WH, 2023),
        g,
        c,
        b.year_closed(WH, 2024),
    )
    assert bonus(out, m, 2023) == (Decimal("0"), Decimal("1.0"))
    # 70 + 1 = 71%: 700 × 71% = 497
    s = b.settled(out, g)
    assert (s["deductible_paid"], s["fund_paid"], s["fund_ratio"]) == ("300.00", "497.00", "0.7100")
    # the bonus is general outpatient only: chronic (2000 − 900) × 80% = 880
    assert b.settled(out, c)["fund_paid"] == "880.00"
    assert bonus(out, m, 2024) == (Decimal("1.0"), Decimal("0"))


def test_incentive_half_of_limit_boundary_and_partial_year():
    at, over, late = "WH-HALF-AT", "WH-HALF-OVER", "WH-LATE"
    v1 = b.visit(at, WH, on="2023-03-01", items=drug("1100.00"), **TIER1)
    v2 = b.visit(over, WH, on="2023-03-01", items=drug("1100.01"), **TIER1)
    out = run(
        enrolled(at, on="2022-07-01"),
        enrolled(over, on="2022-07-01"),
        b.year_closed(WH, 2022),
        enrolled(late, on="2023-03-01"),
        v1,
        v2,
        b.year_closed(WH, 2023),
    )
    # base 800 = 50% of 1600 (含) → +0.5
    assert b.settled(out, v1)["fund_paid"] == "560.00"
    assert bonus(out, at, 2023)[1] == Decimal("0.5")
    # base 800.01 > 50% → nothing; fund 800.01 × 70% = 560.007 → 560.01
    assert b.settled(out, v2)["fund_paid"] == "560.01"
    assert bonus(out, over, 2023)[1] == Decimal("0")
    # enrolled 2023-03-01: not the whole year, no payment, still nothing earned
    assert all(Decimal(i["after"]) == 0 for i in b.incentives(out, late, 2023))


def test_incentive_reset_by_contribution_interruption():
    m, ctrl = "WH-INTERRUPTED", "WH-STEADY"
    out = run(
        enrolled(m, on="2022-07-01"),
        enrolled(ctrl, on="2022-07-01"),
        b.year_closed(WH, 2022),
        b.year_closed(WH, 2023),
        b.interrupted(m, WH, on="2024-03-01"),
        b.resumed(m, WH, on="2024-05-01"),
        b.year_closed(WH, 2024),
    )
    assert bonus(out, m, 2023) == (Decimal("0"), Decimal("1.0"))
    # 001 第十二条 激励待遇享受前发生缴费中断 → 重新计算
    assert bonus(out, m, 2024) == (Decimal("1.0"), Decimal("0"))
    assert bonus(out, ctrl, 2024) == (Decimal("1.0"), Decimal("2.0"))


def test_incentive_moves_with_insurance_type_change():
    m = "WH-BONUS-MOVES"
    v = b.visit(m, WH, on="2024-03-01", items=drug("1000.00"), **TIER1)
    out = run(
        enrolled(m, on="2022-07-01", person_type="resident_tier1"),
        b.year_closed(WH, 2022),
        b.year_closed(WH, 2023),
        b.type_changed(m, WH, on="2024-01-01", person_type="in_service"),
        v,
    )
    assert bonus(out, m, 2023) == (Decimal("0"), Decimal("1.0"))
    # 001 第十一条 激励待遇随之转移: employee tier 1 70% + 1 = 71%: (1000 − 300) × 71% = 497
    s = b.settled(out, v)
    assert (s["deductible_paid"], s["fund_paid"], str(s["insutype"])) == ("300.00", "497.00", "310")
