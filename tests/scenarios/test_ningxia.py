"""Ningxia 640000 — `000` (宁医保规发〔2023〕3号, from 2023-06-01) and `003` (宁医保发〔2023〕103号).

Policy notes §1. All members are employees; default facility is a designated tier-3 grade-A general hospital.
"""

from tests import builders as b

NX = b.NINGXIA


run = b.settle


def enrolled(member, **kw):
    kw.setdefault("on", "2023-06-01")
    return b.enrolled(member, NX, **kw)


drug = b.drug


# --- worked example (policy notes §1) ----------------------------------------------------------------------------


def test_worked_example_general_then_chronic_then_cap():
    m = "NX-WORKED"
    v1 = b.visit(m, NX, on="2023-06-05", items=drug("1000.00"))  # tier 3 A
    v2 = b.visit(m, NX, on="2023-06-12", level=2, grade="A", items=drug("500.00"))  # tier 2
    cert = b.chronic_certified(m, NX, "E11", "3000.00", on="2023-06-15")
    v3 = b.chronic_visit(m, NX, "E11", on="2023-06-20", items=drug("2000.00"))
    v4 = b.visit(m, NX, on="2023-07-03", level=1, grade=None, items=drug("5000.00"))
    out = run(enrolled(m), v1, v2, cert, v3, v4)
    assert b.rejections(out) == []

    # 000 第十一条: tier 3 threshold 300; 3A in-service 60%: (1000 − 300) × 60% = 420
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("300.00", "420.00", "0.00", "580.00")
    assert (s1["fund_ratio"], s1["copay_amount"], s1["fund_pool"]) == ("0.6000", "280.00", "general")
    assert s1["limit_remaining"] == "3580.00"  # 4000 − 420
    assert (s1["policy_id"], str(s1["insutype"]), str(s1["med_type"])) == ("640000-2023", "310", "11")
    assert str(s1["fund_pay_type"]) == "310100"

    # tier 2: threshold 100 already covered by the 300 paid; 500 × 70% = 350 (YTD 770)
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "350.00", "0.00", "150.00")
    assert (s2["fund_ratio"], s2["limit_remaining"]) == ("0.7000", "3230.00")

    # 000 第十七条: chronic threshold 500 on the shared counter → 200 due; (2000 − 200) × 75% = 1350, chronic pool
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("200.00", "1350.00", "0.00", "650.00")
    assert (s3["fund_pool"], s3["fund_ratio"], str(s3["med_type"])) == ("chronic", "0.7500", "14")
    assert s3["limit_remaining"] == "1650.00"  # 3000 − 1350

    # tier 1: no threshold; 5000 × 75% = 3750 but the general cap leaves 4000 − 770 = 3230; over-cap 520
    s4 = b.settled(out, v4)
    assert b.core(s4) == ("0.00", "3230.00", "520.00", "1770.00")
    assert (s4["copay_amount"], s4["limit_remaining"]) == ("1250.00", "0.00")

    for s in (s1, s2, s3, s4):
        b.assert_identities(s)
    seqs = [s["ledger_seq"] for s in (s1, s2, s3, s4)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


def test_settlement_carries_national_aliases():
    m = "NX-ALIAS"
    v = b.visit(m, NX, on="2023-06-05", items=drug("1000.00"))
    s = b.settled(run(enrolled(m), v), v)
    assert s["setl_id"] == s["settlement_id"]
    assert (s["mdtrt_id"], s["psn_no"]) == (v["visit_id"], m)
    assert (s["medfee_sumamt"], s["inscp_scp_amt"], s["act_pay_dedc"]) == ("1000.00", "1000.00", "300.00")
    assert (s["hifp_pay"], s["psn_part_amt"], s["overlmt_selfpay"]) == ("420.00", "580.00", "0.00")
    assert (s["acct_pay"], s["psn_cash_pay"]) == ("0.00", "580.00")
    assert s["reverses"] is None
    assert s["explanation"] and all(isinstance(x, str) for x in s["explanation"])
    assert any("第十一条" in x for x in s["explanation"])


# --- further scenarios -------------------------------------------------------------------------------------------


def test_tier2_threshold_counts_toward_tier3_and_grade_b():
    m = "NX-TIERS"
    v1 = b.visit(m, NX, on="2023-06-05", level=2, grade="A", items=drug("300.00"))
    v2 = b.visit(m, NX, on="2023-06-06", items=drug("1000.00"))
    v3 = b.visit(m, NX, on="2023-06-07", level=3, grade="B", items=drug("1000.00"))
    v4 = b.visit(m, NX, on="2023-06-08", level=3, grade=None, items=drug("200.00"))
    out = run(enrolled(m), v1, v2, v3, v4)
    # 000 第十一条: tier 2 threshold 100; (300 − 100) × 70% = 140
    assert b.core(b.settled(out, v1)) == ("100.00", "140.00", "0.00", "160.00")
    # tier 2's 100 合并计入 tier-3 threshold: 300 − 100 = 200 due; (1000 − 200) × 60% = 480
    assert b.core(b.settled(out, v2)) == ("200.00", "480.00", "0.00", "520.00")
    # 三乙 65%, threshold met: 1000 × 65% = 650
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("0.00", "650.00", "0.00", "350.00") and s3["fund_ratio"] == "0.6500"
    # a tier-3 hospital without grade A uses the 三乙 ratio (notes §1): 200 × 65% = 130
    assert b.core(b.settled(out, v4)) == ("0.00", "130.00", "0.00", "70.00")


def test_retirement_switches_ratio_and_cap_from_next_month():
    m = "NX-RETIRING"
    ret = b.retired(m, NX, on="2023-08-15", pension="4200.00")
    v1 = b.visit(m, NX, on="2023-08-20", items=drug("1000.00"))
    v2 = b.visit(m, NX, on="2023-09-05", items=drug("1000.00"))
    v3 = b.visit(m, NX, on="2023-09-10", level=1, grade=None, items=drug("6000.00"))
    out = run(enrolled(m, birth_date="1963-08-02"), ret, v1, v2, v3)
    # 000 第十一条 从次月起: still in service in August → 60%: (1000 − 300) × 60% = 420
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("300.00", "420.00", "0.00", "580.00") and s1["fund_ratio"] == "0.6000"
    # September: retired 3A 65%: 1000 × 65% = 650 (YTD 1070)
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "650.00", "0.00", "350.00") and s2["fund_ratio"] == "0.6500"
    # retired tier 1 80%: 6000 × 80% = 4800; retired cap 4500 − 1070 = 3430 (in-service cap would leave 2930)
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("0.00", "3430.00", "1370.00", "2570.00")
    assert s3["limit_remaining"] == "0.00"


def test_cap_exhausted_then_reset_on_1_january():
    m = "NX-CAP"
    v1 = b.visit(m, NX, on="2023-07-01", level=1, grade=None, items=drug("6000.00"))
    v2 = b.visit(m, NX, on="2023-08-01", level=1, grade=None, items=drug("100.00"))
    v3 = b.visit(m, NX, on="2024-01-05", items=drug("1000.00"))
    out = run(enrolled(m), v1, v2, b.year_closed(NX, 2023), v3)
    # 000 第十一条: 6000 × 75% = 4500 > in-service cap 4000 → fund 4000, over-cap 500
    assert b.core(b.settled(out, v1)) == ("0.00", "4000.00", "500.00", "2000.00")
    # cap used up: 100 × 75% = 75 all over the cap
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "0.00", "75.00", "100.00") and s2["limit_remaining"] == "0.00"
    # notes §0: accumulators reset on 1 January; threshold 300 again; (1000 − 300) × 60% = 420
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("300.00", "420.00", "0.00", "580.00")
    assert (s3["limit_remaining"], s3["policy_id"]) == ("3580.00", "640000-2023")


def test_fund_payment_rounded_once_half_up():
    a, r = "NX-ROUND-A", "NX-ROUND-R"
    va = b.visit(a, NX, on="2023-06-05", items=drug("1000.01"))
    vr = b.visit(r, NX, on="2023-06-05", items=drug("1000.01"))
    out = run(
        enrolled(a), enrolled(r, person_type="retired", monthly_pension="3000.00", birth_date="1958-01-01"), va, vr
    )
    # notes §0: 700.01 × 60% = 420.006 → 420.01; member share 1000.01 − 420.01 = 580.00
    assert b.core(b.settled(out, va)) == ("300.00", "420.01", "0.00", "580.00")
    # retired 3A 65% (000 第十一条): 700.01 × 65% = 455.0065 → 455.01 (half up)
    sr = b.settled(out, vr)
    assert b.core(sr) == ("300.00", "455.01", "0.00", "545.00")
    assert sr["copay_amount"] == "245.00"


def test_chronic_pool_three_certifications_80_percent_rule_and_cap_adjustment():
    m = "NX-3CHRONIC"
    certs = [
        b.chronic_certified(m, NX, "E11", "3000.00", on="2023-06-01"),
        b.chronic_certified(m, NX, "I10", "2000.00", on="2023-06-01"),
        b.chronic_certified(m, NX, "N18", "5000.00", on="2023-06-01"),
    ]
    v1 = b.chronic_visit(m, NX, "N18", on="2023-06-10", items=drug("12000.00"))
    v2 = b.chronic_visit(m, NX, "I10", on="2023-07-01", level=2, items=drug("2000.00"))
    adj = b.cap_adjusted(m, NX, "I10", "6000.00", on="2023-08-01")
    v3 = b.chronic_visit(m, NX, "E11", on="2023-08-10", items=drug("5000.00"))
    v4 = b.visit(m, NX, on="2023-08-20", level=1, grade=None, items=drug("1000.00"))
    out = run(enrolled(m), certs, v1, v2, adj, v3, v4)
    # 000 第十九条: caps high→low 5000, 3000, then 2000 × 80% = 1600 → pool 9600
    # 第十七条: threshold 500, 75%: (12000 − 500) × 75% = 8625; pool left 975
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("500.00", "8625.00", "0.00", "3375.00") and s1["limit_remaining"] == "975.00"
    # 2000 × 75% = 1500 but only 975 left → over 525
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "975.00", "525.00", "1025.00") and s2["limit_remaining"] == "0.00"
    # 第二十条 adjustment I10 → 6000 re-sorts: 6000 + 5000 + 3000 × 80% = 13400; used 9600 stays used → 3800 left
    # 5000 × 75% = 3750 ≤ 3800 (without re-sorting the pool would be 13000 and pay only 3400)
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("0.00", "3750.00", "0.00", "1250.00") and s3["limit_remaining"] == "50.00"
    # 第四条 单独记账: the general cap is untouched by chronic payments: 1000 × 75% = 750, 4000 − 750 left
    s4 = b.settled(out, v4)
    assert b.core(s4) == ("0.00", "750.00", "0.00", "250.00")
    assert (s4["fund_pool"], s4["limit_remaining"]) == ("general", "3250.00")


def test_new_third_certification_mid_year_adds_80_percent_of_its_cap():
    m = "NX-NEWCERT"
    v1 = b.chronic_visit(m, NX, "E11", on="2023-07-01", items=drug("8000.00"))
    cert3 = b.chronic_certified(m, NX, "N18", "1000.00", on="2023-09-01")
    v2 = b.chronic_visit(m, NX, "N18", on="2023-09-10", items=drug("2000.00"))
    out = run(
        enrolled(m),
        b.chronic_certified(m, NX, "E11", "3000.00"),
        b.chronic_certified(m, NX, "I10", "2000.00"),
        v1,
        cert3,
        v2,
    )
    # 000 第十九条: two diseases → pool 3000 + 2000 = 5000; (8000 − 500) × 75% = 5625 → 5000, over 625
    assert b.core(b.settled(out, v1)) == ("500.00", "5000.00", "625.00", "3000.00")
    # third disease: 3000 + 2000 + 1000 × 80% = 5800 → 800 left; 2000 × 75% = 1500 → 800, over 700
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "800.00", "700.00", "1200.00") and s2["limit_remaining"] == "0.00"


def test_chronic_visit_without_certification_on_the_date_settles_as_general():
    m = "NX-UNCERT"
    v1 = b.chronic_visit(m, NX, "E11", on="2023-07-15", items=drug("1000.00"))  # before certification
    cert = b.chronic_certified(m, NX, "E11", "3000.00", on="2023-08-01")
    v2 = b.chronic_visit(m, NX, "I10", on="2023-08-05", items=drug("1000.00"))  # other disease
    v3 = b.chronic_visit(m, NX, "E11", on="2023-08-06", items=drug("1000.00"))  # certified
    revoke = b.chronic_revoked(m, NX, "E11", on="2023-09-01")
    v4 = b.chronic_visit(m, NX, "E11", on="2023-09-02", items=drug("1000.00"))  # after revocation
    out = run(enrolled(m), v1, cert, v2, v3, revoke, v4)
    # notes §1/§0: general rules 3A: (1000 − 300) × 60% = 420, general pool
    s1 = b.settled(out, v1)
    assert b.core(s1) == ("300.00", "420.00", "0.00", "580.00") and s1["fund_pool"] == "general"
    # general again, threshold met: 1000 × 60% = 600
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("0.00", "600.00", "0.00", "400.00") and s2["fund_pool"] == "general"
    # certified: chronic threshold 500 − 300 = 200; 800 × 75% = 600, chronic pool 3000 − 600 = 2400
    s3 = b.settled(out, v3)
    assert b.core(s3) == ("200.00", "600.00", "0.00", "400.00")
    assert (s3["fund_pool"], s3["limit_remaining"]) == ("chronic", "2400.00")
    # revoked → general: 1000 × 60% = 600; general YTD 1020 + 600
    s4 = b.settled(out, v4)
    assert (s4["fund_pool"], s4["fund_paid"], s4["limit_remaining"]) == ("general", "600.00", "2380.00")


def test_village_clinic_two_diseases_pilot():
    pilot, other = "NX-PILOT", "NX-NOPILOT"
    village = dict(level=0, grade=None, kind="village_clinic")
    p1 = b.chronic_visit(pilot, NX, "I10", on="2023-07-01", items=drug("600.00"), **village)
    p2 = b.chronic_visit(pilot, NX, "N18", on="2023-07-02", items=drug("600.00"), **village)
    p3 = b.visit(pilot, NX, on="2023-07-03", items=drug("300.00"), **village)
    o1 = b.chronic_visit(other, NX, "I10", on="2023-07-01", items=drug("600.00"), **village)
    o2 = b.chronic_visit(
        other, NX, "I10", on="2023-07-05", level=1, grade=None, kind="township_health_center", items=drug("600.00")
    )
    out = run(
        enrolled(pilot, remote_pilot=True),
        enrolled(other, remote_pilot=False),
        b.chronic_certified(pilot, NX, "I10", "2000.00"),
        b.chronic_certified(pilot, NX, "N18", "5000.00"),
        b.chronic_certified(other, NX, "I10", "2000.00"),
        p1,
        o1,
        p2,
        p3,
        o2,
    )
    # 003 一(一): 两病 at a village clinic for a remote_pilot member: threshold 500 (000 第十七条), (600 − 500) × 75%
    s = b.settled(out, p1)
    assert b.core(s) == ("500.00", "75.00", "0.00", "525.00") and s["fund_pool"] == "chronic"
    # not 两病 → no fund payment at a village clinic (000 第十四条 一级及以上)
    assert b.core(b.settled(out, p2)) == ("0.00", "0.00", "0.00", "600.00")
    # general outpatient below tier 1 not covered (000 第十条)
    assert b.core(b.settled(out, p3)) == ("0.00", "0.00", "0.00", "300.00")
    # not in the pilot → nothing, and no accumulator moves ...
    assert b.core(b.settled(out, o1)) == ("0.00", "0.00", "0.00", "600.00")
    # ... so the whole 500 threshold is still due at the township centre: (600 − 500) × 75% = 75
    assert b.core(b.settled(out, o2)) == ("500.00", "75.00", "0.00", "525.00")


def test_cross_province_out_of_area():
    m = "NX-AWAY"
    filed = b.visit(m, NX, on="2023-07-01", out_of_area="temporary_filed", items=drug("1000.00"))
    unfiled = b.visit(m, NX, on="2023-07-02", out_of_area="temporary_unfiled", items=drug("1000.00"))
    long_term = b.visit(m, NX, on="2023-07-03", out_of_area="long_term", items=drug("1000.00"))
    chronic = b.chronic_visit(m, NX, "E11", on="2023-07-04", out_of_area="temporary_filed", items=drug("1000.00"))
    out = run(enrolled(m), b.chronic_certified(m, NX, "E11", "3000.00"), filed, unfiled, long_term, chronic)
    # 000 第二十七条: temporary filers get no general outpatient benefit; unfiled likewise (notes §1)
    assert b.core(b.settled(out, filed)) == ("0.00", "0.00", "0.00", "1000.00")
    assert b.core(b.settled(out, unfiled)) == ("0.00", "0.00", "0.00", "1000.00")
    # long-term residents settle normally; nothing was taken before: (1000 − 300) × 60% = 420
    assert b.core(b.settled(out, long_term)) == ("300.00", "420.00", "0.00", "580.00")
    # chronic out of area is settled normally: 500 − 300 = 200 due; 800 × 75% = 600
    assert b.core(b.settled(out, chronic)) == ("200.00", "600.00", "0.00", "400.00")


def test_not_designated_and_inpatient_period_pay_nothing_and_move_nothing():
    m = "NX-NOFUND"
    nd = b.visit(m, NX, on="2023-07-01", designated=False, items=drug("1000.00"))
    inp = b.visit(m, NX, on="2023-07-02", inpatient=True, items=drug("1000.00"))
    ok = b.visit(m, NX, on="2023-07-03", items=drug("1000.00"))
    out = run(enrolled(m), nd, inp, ok)
    # 000 第十二条: non-designated facility, outpatient costs during an inpatient stay: not payable
    assert b.core(b.settled(out, nd)) == ("0.00", "0.00", "0.00", "1000.00")
    assert b.core(b.settled(out, inp)) == ("0.00", "0.00", "0.00", "1000.00")
    # no accumulator moved: full threshold 300; 700 × 60% = 420
    assert b.core(b.settled(out, ok)) == ("300.00", "420.00", "0.00", "580.00")


def test_out_of_catalog_pre_self_pay_and_checkup_lines():
    m = "NX-LINES"
    v = b.visit(
        m,
        NX,
        on="2023-07-01",
        items=[
            b.line("1200.00", out_of_catalog="100.00", pre_self_pay="100.00"),
            b.line("300.00", category="health_checkup"),
        ],
    )
    s = b.settled(run(enrolled(m), v), v)
    # notes §0: in-policy = 1200 − 100 − 100 = 1000; check-up never payable (000 第十二条 健康体检类费用)
    assert (s["total_amount"], s["out_of_catalog_amount"], s["pre_self_pay_amount"]) == ("1500.00", "100.00", "100.00")
    assert s["in_policy_amount"] == "1000.00"
    # (1000 − 300) × 60% = 420; member share 1500 − 420 = 1080
    assert b.core(s) == ("300.00", "420.00", "0.00", "1080.00")
    b.assert_identities(s)


def test_internet_hospital_and_community_centre_reported_at_level_0():
    m = "NX-LEVELS"
    comm = b.visit(m, NX, on="2023-07-01", level=0, grade=None, kind="community_health_center", items=drug("400.00"))
    net = b.visit(m, NX, on="2023-07-02", level=3, grade="B", kind="internet_hospital", items=drug("1000.00"))
    out = run(enrolled(m), comm, net)
    # readings: community centres are tier 1 even at level 0 (000 第十条); tier 1: no threshold, 75%
    assert b.core(b.settled(out, comm)) == ("0.00", "300.00", "0.00", "100.00")
    # 003 一(一): internet visit at its hospital's level: 三乙 threshold 300, 65%: 700 × 65% = 455
    assert b.core(b.settled(out, net)) == ("300.00", "455.00", "0.00", "545.00")


def test_flexible_employment_settles_at_in_service_rates():
    m = "NX-FLEX"
    v = b.visit(m, NX, on="2023-07-01", level=2, grade="A", items=drug("1000.00"))
    s = b.settled(run(enrolled(m, person_type="flexible"), v), v)
    # 000 第十一条 (in-service rates): tier 2 threshold 100; 900 × 70% = 630
    assert b.core(s) == ("100.00", "630.00", "0.00", "370.00")


def test_reversal_restores_deductible_general_and_chronic_pools():
    m = "NX-REVERSE"
    v1 = b.visit(m, NX, on="2023-07-01", items=drug("1000.00"))
    rev1 = b.reversed_visit(m, NX, v1["visit_id"], on="2023-07-02")
    v2 = b.visit(m, NX, on="2023-07-03", items=drug("1000.00"))
    c1 = b.chronic_visit(m, NX, "E11", on="2023-07-04", items=drug("2000.00"))
    rev2 = b.reversed_visit(m, NX, c1["visit_id"], on="2023-07-05")
    c2 = b.chronic_visit(m, NX, "E11", on="2023-07-06", items=drug("2000.00"))
    out = run(enrolled(m), b.chronic_certified(m, NX, "E11", "1000.00"), v1, rev1, v2, c1, rev2, c2)
    s1, r1 = b.settled(out, v1), b.reversal_of(out, v1)
    # notes §0 Reversal: negated amounts, pointing at the original
    b.assert_reverses(r1, s1)
    assert (r1["total_amount"], r1["deductible_paid"], r1["fund_paid"]) == ("-1000.00", "-300.00", "-420.00")
    b.assert_identities(r1)
    # the later visit settles as if v1 never happened: threshold 300 again, 420, cap 4000 − 420
    s2 = b.settled(out, v2)
    assert b.core(s2) == ("300.00", "420.00", "0.00", "580.00") and s2["limit_remaining"] == "3580.00"
    # chronic (cap 1000): threshold 500 − 300 = 200; 1800 × 75% = 1350 → 1000, over 350
    assert b.core(b.settled(out, c1)) == ("200.00", "1000.00", "350.00", "1000.00")
    # reversed → pool and shared counter restored; c2 settles exactly like c1
    assert b.reversal_of(out, c1)["fund_paid"] == "-1000.00"
    assert b.core(b.settled(out, c2)) == ("200.00", "1000.00", "350.00", "1000.00")
