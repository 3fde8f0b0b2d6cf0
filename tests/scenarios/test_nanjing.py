"""Nanjing 320100 — `002` (宁政规字〔2022〕5号, 2023-01-01 to 2027-12-31).

Policy notes §3: no deductible; the year's cumulative in-policy expense runs through bands (第十四条), each visit
paying at the ratios of the bands its amount falls into. "Community" = community / township health centres.
"""

from tests import builders as b

NJ = b.NANJING

COMMUNITY = dict(level=1, grade=None, kind="community_health_center")
NON_COMMUNITY = dict(level=3, grade="A", kind="general_hospital")


run = b.settle


def enrolled(member, **kw):
    kw.setdefault("on", "2023-01-01")
    if kw.get("person_type") in ("retired", "veteran_pre1949"):
        kw.setdefault("legacy_monthly_credit", "150.00")
        kw.setdefault("monthly_pension", "4000.00")
    return b.enrolled(member, NJ, **kw)


drug = b.drug


def streak(out, member, year):
    found = b.incentives(out, member, year)
    assert len(found) == 1, found
    assert found[0]["incentive"] == "nanjing_health_streak" and found[0]["region"] == NJ
    return int(found[0]["before"]), int(found[0]["after"])


# --- worked example (policy notes §3) ----------------------------------------------------------------------------


def test_worked_example_bands():
    m = "NJ-WORKED"
    v1 = b.visit(
        m, NJ, on="2023-02-01", items=[b.line("800.00"), b.line("20.00", category="consultation_fee")], **NON_COMMUNITY
    )
    v2 = b.visit(m, NJ, on="2023-03-01", items=drug("1500.00"), **COMMUNITY)
    v3 = b.visit(m, NJ, on="2023-04-01", items=drug("14000.00"), **NON_COMMUNITY)
    out = run(enrolled(m), v1, v2, v3)
    assert b.rejections(out) == []
    # 002 第十四条(一) non-community 40%: 800 × 40%; 第十五条 fee at the first-band ratio: 20 × 40% → 328
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("0.00", "328.00", "0.00", "492.00")
    assert (s1["fund_ratio"], s1["policy_id"], str(s1["med_type"])) == ("0.4000", "320100-2023", "11")
    # position 800 (fee not counted): 200 × 50% + 1300 × 70% = 1010 (position 2300); effective ratio 1010/1500
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "1010.00", "0.00", "490.00") and s2["fund_ratio"] == "0.6733"
    # 2700 × 60% + 10000 × 65% + 1300 × 0 = 8120; the 1300 above 15000 is over the limit
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("0.00", "8120.00", "1300.00", "5880.00")
    for s in (s1, s2, s3):
        b.assert_identities(s)


# --- further scenarios -------------------------------------------------------------------------------------------


def test_retired_under_70_straddles_bands():
    m = "NJ-RETIRED"
    v1 = b.visit(m, NJ, on="2023-02-01", items=drug("1200.00"), **NON_COMMUNITY)
    v2 = b.visit(m, NJ, on="2023-03-01", items=drug("4500.00"), **COMMUNITY)
    out = run(enrolled(m, person_type="retired", birth_date="1960-01-01"), v1, v2)
    # 002 第十四条 retired <70 non-community: 1000 × 45% + 200 × 70% = 590
    assert b.core(b.settled(out, v1)) == ("0.00", "590.00", "0.00", "610.00")
    # community, position 1200 → 5700: 3800 × 80% + 700 × 85% = 3040 + 595 = 3635
    assert b.core(b.settled(out, v2)) == ("0.00", "3635.00", "0.00", "865.00")


def test_seventieth_birthday_bracket_from_next_month():
    m = "NJ-SEVENTY"
    v1 = b.visit(m, NJ, on="2023-05-25", items=drug("500.00"), **COMMUNITY)
    v2 = b.visit(m, NJ, on="2023-06-01", items=drug("500.00"), **COMMUNITY)
    v3 = b.visit(m, NJ, on="2023-06-15", items=drug("1000.00"), **COMMUNITY)
    out = run(enrolled(m, person_type="retired", birth_date="1953-05-20"), v1, v2, v3)
    # 002 第十八条 到达待遇享受年龄次月起: in May (birthday month) still <70: 500 × 55% = 275
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("0.00", "275.00", "0.00", "225.00") and s1["fund_ratio"] == "0.5500"
    # from June ≥70: position 500 → 1000 at 60% = 300
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "300.00", "0.00", "200.00") and s2["fund_ratio"] == "0.6000"
    # position 1000 → 2000, second band ≥70 community 85% = 850
    assert b.core(b.settled(out, v3)) == ("0.00", "850.00", "0.00", "150.00")


def test_mid_year_retirement_rates_from_next_month():
    m = "NJ-RETIRING"
    v1 = b.visit(m, NJ, on="2023-04-20", items=drug("600.00"), **NON_COMMUNITY)
    v2 = b.visit(m, NJ, on="2023-05-03", items=drug("600.00"), **NON_COMMUNITY)
    out = run(
        enrolled(m, birth_date="1963-04-01", contribution_base="8000.00"),
        b.retired(m, NJ, on="2023-04-10", pension="5000.00"),
        v1,
        v2,
    )
    # 002 第十八条 次月起: April still in service, non-community 40%: 600 × 40% = 240
    assert b.core(b.settled(out, v1)) == ("0.00", "240.00", "0.00", "360.00")
    # May retired <70: position 600 → 1200: 400 × 45% + 200 × 70% = 320 (band position carries over)
    assert b.core(b.settled(out, v2)) == ("0.00", "320.00", "0.00", "280.00")


def test_pre_1949_veteran_worker():
    m = "NJ-VETERAN"
    v1 = b.visit(m, NJ, on="2023-02-01", items=drug("1000.00"), **COMMUNITY)
    v2 = b.visit(m, NJ, on="2023-03-01", items=drug("15000.00"), **NON_COMMUNITY)
    out = run(enrolled(m, person_type="veteran_pre1949", birth_date="1932-10-01"), v1, v2)
    # 002 第十四条 建国前老工人: 15000 and below, community 100%
    assert b.core(b.settled(out, v1)) == ("0.00", "1000.00", "0.00", "0.00")
    # position 1000 → 16000: 14000 × 95% = 13300; 1000 above 15000 not payable
    assert b.core(b.settled(out, v2)) == ("0.00", "13300.00", "1000.00", "1700.00")


def test_annual_band_ceiling_exhausted_then_reset():
    m = "NJ-CEILING"
    v1 = b.visit(m, NJ, on="2023-02-01", items=drug("16000.00"), **COMMUNITY)
    v2 = b.visit(m, NJ, on="2023-03-01", items=drug("500.00"), **NON_COMMUNITY)
    v3 = b.visit(m, NJ, on="2024-01-10", items=drug("1000.00"), **COMMUNITY)
    out = run(enrolled(m, contribution_base="9000.00"), v1, v2, b.year_closed(NJ, 2023), v3)
    # 1000 × 50% + 4000 × 70% + 10000 × 75% + 1000 × 0 = 10800
    assert b.core(b.settled(out, v1)) == ("0.00", "10800.00", "1000.00", "5200.00")
    # already above 15000: nothing payable
    assert b.core(b.settled(out, v2)) == ("0.00", "0.00", "500.00", "500.00")
    # 1 January: band position back to 0, first band 50%
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("0.00", "500.00", "0.00", "500.00") and s3["policy_id"] == "320100-2024"


def test_fee_lines_paid_at_first_band_ratio_and_do_not_move_the_band():
    m = "NJ-FEES"
    v1 = b.visit(m, NJ, on="2023-02-01", items=drug("1000.00"), **COMMUNITY)
    v2 = b.visit(
        m,
        NJ,
        on="2023-02-10",
        items=[
            b.line("500.00"),
            b.line("30.00", category="consultation_fee"),
            b.line("10.00", category="general_diagnosis_fee"),
            b.line("40.00", category="nucleic_acid_test"),
        ],
        **NON_COMMUNITY,
    )
    v3 = b.visit(m, NJ, on="2023-02-20", items=drug("3500.00"), **COMMUNITY)
    out = run(enrolled(m), v1, v2, v3)
    assert b.core(b.settled(out, v1)) == ("0.00", "500.00", "0.00", "500.00")
    # 002 第十五条: drug 500 in band 2 non-community 60% = 300; fees 80 × first-band 40% = 32 → 332
    assert b.core(b.settled(out, v2)) == ("0.00", "332.00", "0.00", "248.00")
    # position is 1500 (not 1580): 3500 fits band 2 up to 5000 exactly → 3500 × 70% = 2450
    assert b.core(b.settled(out, v3)) == ("0.00", "2450.00", "0.00", "1050.00")


def test_retail_pharmacy_with_and_without_prescription():
    m = "NJ-PHARMACY"
    pharmacy = dict(level=0, grade=None, kind="retail_pharmacy")
    p1 = b.visit(
        m,
        NJ,
        on="2023-02-01",
        items=drug("200.00"),
        **pharmacy,
        prescription=b.prescribed_by(1, None, "community_health_center"),
    )
    p2 = b.visit(m, NJ, on="2023-02-02", items=drug("200.00"), **pharmacy, prescription=b.prescribed_by(3, "A"))
    p3 = b.visit(m, NJ, on="2023-02-03", items=drug("200.00"), **pharmacy)
    out = run(enrolled(m), p1, p2, p3)
    # 002 第二十三条: the prescriber's rates: community 50% → 100
    s1 = b.settled(out, p1)
    assert b.core(s1) == ("0.00", "100.00", "0.00", "100.00") and str(s1["med_type"]) == "41"
    # tier-3 hospital prescription: non-community 40% → 80 (position 200 → 400)
    assert b.core(b.settled(out, p2)) == ("0.00", "80.00", "0.00", "120.00")
    # no prescription: not fund-payable
    s3 = b.settled(out, p3)
    assert b.core(s3) == ("0.00", "0.00", "0.00", "200.00") and str(s3["med_type"]) == "41"


def test_township_centre_is_community_non_designated_and_checkup_lines():
    m = "NJ-MISC"
    v1 = b.visit(m, NJ, on="2023-02-01", items=drug("400.00"), level=1, grade=None, kind="township_health_center")
    v2 = b.visit(m, NJ, on="2023-02-02", items=drug("400.00"), designated=False, **NON_COMMUNITY)
    v3 = b.visit(
        m, NJ, on="2023-02-03", items=[b.line("300.00"), b.line("200.00", category="health_checkup")], **COMMUNITY
    )
    out = run(enrolled(m), v1, v2, v3)
    # township health centre counts as community: 400 × 50% = 200
    assert b.core(b.settled(out, v1)) == ("0.00", "200.00", "0.00", "200.00")
    # 002 第十三条 定点医疗机构: not designated → nothing, band position unchanged
    assert b.core(b.settled(out, v2)) == ("0.00", "0.00", "0.00", "400.00")
    # check-up line is member share; 300 at 50% (position 400 → 700) = 150
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("0.00", "150.00", "0.00", "350.00") and s3["in_policy_amount"] == "300.00"


def test_reversal_restores_band_position():
    m = "NJ-REVERSE"
    v1 = b.visit(m, NJ, on="2023-02-01", items=drug("1000.00"), **COMMUNITY)
    rev = b.reversed_visit(m, NJ, v1["visit_id"], on="2023-02-02")
    v2 = b.visit(m, NJ, on="2023-02-03", items=drug("1000.00"), **COMMUNITY)
    out = run(enrolled(m), v1, rev, v2)
    s1 = b.settled(out, v1)
    assert s1["fund_paid"] == "500.00"
    b.assert_reverses(b.reversal_of(out, v1), s1)
    # as if v1 never happened: still band 1, 1000 × 50% = 500 (not 70%)
    assert b.core(b.settled(out, v2)) == ("0.00", "500.00", "0.00", "500.00")


def test_chronic_visit_not_configured_without_parameters():
    m = "NJ-CHRONIC"
    c = b.chronic_visit(m, NJ, "E11", on="2023-03-01", items=drug("500.00"))
    out = run(enrolled(m), c)
    # 002 第十六条 具体待遇政策另行制定
    assert b.reason(out, c) == "policy_not_configured"
    assert b.settlements(out) == []


# --- health incentive (002 第七条) --------------------------------------------------------------------------------


def test_health_incentive_200_then_300_then_broken_by_fund_payment():
    m = "NJ-HEALTHY"
    close23, close24, close25 = b.year_closed(NJ, 2023), b.year_closed(NJ, 2024), b.year_closed(NJ, 2025)
    v = b.visit(m, NJ, on="2025-03-01", items=drug("100.00"), **NON_COMMUNITY)
    out = run(enrolled(m), close23, close24, v, close25)
    assert streak(out, m, 2023) == (0, 1)
    assert streak(out, m, 2024) == (1, 2)
    # 2025: 100 × 40% = 40 paid by the pooled fund → streak ends, nothing credited
    assert b.settled(out, v)["fund_paid"] == "40.00"
    assert streak(out, m, 2025) == (2, 0)
    credits = b.movements(out, m, "health_incentive")
    # 200, then 200 + 100 × (2 − 1) = 300; booked under the closed year's policy (readings)
    assert [(c["amount"], c["balance_after"], c["kind"]) for c in credits] == [
        ("200.00", "200.00", "credit"),
        ("300.00", "500.00", "credit"),
    ]
    assert [c["event_id"] for c in credits] == [close23["event_id"], close24["event_id"]]
    assert [c["policy_id"] for c in credits] == ["320100-2023", "320100-2024"]


def test_health_incentive_ignores_fee_lines_and_reversed_payments():
    fees, reversed_, paid, late = "NJ-FEEONLY", "NJ-REVERSED", "NJ-PAID", "NJ-LATE"
    vf = b.visit(fees, NJ, on="2023-03-01", items=[b.line("30.00", category="consultation_fee")], **COMMUNITY)
    vr = b.visit(reversed_, NJ, on="2023-03-01", items=drug("1000.00"), **COMMUNITY)
    vp = b.visit(paid, NJ, on="2023-03-01", items=drug("100.00"), **COMMUNITY)
    out = run(
        enrolled(fees),
        enrolled(reversed_),
        enrolled(paid),
        enrolled(late, on="2023-03-01"),
        vf,
        vr,
        vp,
        b.reversed_visit(reversed_, NJ, vr["visit_id"], on="2023-03-05"),
        b.year_closed(NJ, 2023),
    )
    # 002 第七条 不含门诊诊察费...统筹基金支付: the fee was paid (30 × 50% = 15) but does not count
    assert b.settled(out, vf)["fund_paid"] == "15.00"
    assert streak(out, fees, 2023) == (0, 1)
    # net of reversals the fund paid nothing
    assert streak(out, reversed_, 2023) == (0, 1)
    # a real fund payment: no streak, no credit
    assert streak(out, paid, 2023) == (0, 0)
    assert b.movements(out, paid, "health_incentive") == []
    # enrolled in March: not the whole year → nothing earned
    assert b.movements(out, late, "health_incentive") == []
    assert [c["amount"] for c in b.movements(out, fees, "health_incentive")] == ["200.00"]
    assert [c["amount"] for c in b.movements(out, reversed_, "health_incentive")] == ["200.00"]


def test_health_incentive_broken_by_external_fund_payment_then_restarts():
    m = "NJ-INPATIENT"
    out = run(
        enrolled(m),
        b.year_closed(NJ, 2023),
        b.external_fund(m, NJ, "8000.00", source="inpatient", on="2024-05-01"),
        b.year_closed(NJ, 2024),
        b.year_closed(NJ, 2025),
    )
    assert streak(out, m, 2023) == (0, 1)
    # 002 第七条 含医疗费用零星报销 / inpatient fund payment: streak broken
    assert streak(out, m, 2024) == (1, 0)
    # a fresh streak starts at 200 again
    assert streak(out, m, 2025) == (0, 1)
    assert [c["amount"] for c in b.movements(out, m, "health_incentive")] == ["200.00", "200.00"]
