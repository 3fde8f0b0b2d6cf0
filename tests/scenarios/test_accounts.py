"""Personal accounts in every region: credits, visit payments, family use (家庭共济), purposes, termination.

Policy notes §1–§5 (account paragraphs) and docs/readings.md (account payment, family payments, termination).
"""

import pytest

from tests import builders as b

NX, WH, NJ, IM = b.NINGXIA, b.WEIHAI, b.NANJING, b.INNER_MONGOLIA
START = {NX: "2023-06-01", WH: "2023-01-01", NJ: "2023-01-01", IM: "2022-10-01"}


run = b.settle


def enrolled(member, region, **kw):
    kw.setdefault("on", START[region])
    return b.enrolled(member, region, **kw)


def credits(out, event):
    """(purpose, amount, balance_after) of the movements an event caused, in order."""
    return [(m["purpose"], m["amount"], m["balance_after"]) for m in b.caused_by(out, event)]


# --- credits -----------------------------------------------------------------------------------------------------


def test_ningxia_credits_2_percent_then_retiree_84_from_month_after_retirement():
    m, flex, old = "NX-ACC", "NX-ACC-FLEX", "NX-ACC-OLD"
    c1 = b.contribution(m, NX, "2023-06", "5555.00")
    c2 = b.contribution(m, NX, "2023-08", "6000.00")
    p1 = b.pension(m, NX, "2023-09", "4200.00")
    p2 = b.pension(m, NX, "2023-10", "3456.00")
    cf = b.contribution(flex, NX, "2023-06", "4000.00")
    po = b.pension(old, NX, "2023-06", "2900.00")
    out = run(
        enrolled(m, NX, birth_date="1963-08-02"),
        enrolled(flex, NX, person_type="flexible"),
        enrolled(old, NX, person_type="retired", birth_date="1955-01-01", monthly_pension="2900.00"),
        po,
        c1,
        cf,
        c2,
        b.retired(m, NX, on="2023-08-15", pension="4200.00"),
        p1,
        p2,
    )
    # 000 第六条: 2% of the month's base: 5555 × 2% = 111.10; August (retirement month) still in service: 120
    assert credits(out, c1) == [("contribution", "111.10", "111.10")]
    assert credits(out, c2) == [("contribution", "120.00", "231.10")]
    # 从次月起 retired: 2.8% × 3000 [param] = 84.00 whatever the pension
    assert credits(out, p1) == [("retiree_credit", "84.00", "315.10")]
    assert credits(out, p2) == [("retiree_credit", "84.00", "399.10")]
    assert b.caused_by(out, p1)[0]["policy_id"] == "640000-2023" and b.caused_by(out, p1)[0]["kind"] == "credit"
    # flexible employment 2%: 4000 × 2% = 80
    assert credits(out, cf) == [("contribution", "80.00", "80.00")]
    assert credits(out, po) == [("retiree_credit", "84.00", "84.00")]


def test_weihai_employer_part_by_age_46_and_none_from_2024():
    m, flex = "WH-ACC", "WH-ACC-FLEX"
    c22 = b.contribution(m, WH, "2022-08", "5000.00")
    c_jun = b.contribution(m, WH, "2023-06", "5000.00")
    c_jul = b.contribution(m, WH, "2023-07", "5000.00")
    c24 = b.contribution(m, WH, "2024-01", "5000.00")
    cf = b.contribution(flex, WH, "2023-06", "5000.00")
    out = run(
        enrolled(m, WH, on="2022-07-01", birth_date="1977-06-15"),
        c22,
        enrolled(flex, WH, person_type="flexible"),
        c_jun,
        cf,
        c_jul,
        c24,
    )
    # notes §2 (001 第二十三条): 2% individual + 0.75% employer under 46 in 2022–2023: 100 + 37.50
    assert credits(out, c22) == [("contribution", "100.00", "100.00"), ("employer_part", "37.50", "137.50")]
    # 46th birthday 2023-06-15 → 46 from July (次月起): June still 0.75%, July 1% = 50
    assert credits(out, c_jun) == [("contribution", "100.00", "237.50"), ("employer_part", "37.50", "275.00")]
    assert credits(out, c_jul) == [("contribution", "100.00", "375.00"), ("employer_part", "50.00", "425.00")]
    # from 2024-01 the employer part is no longer credited
    assert credits(out, c24) == [("contribution", "100.00", "525.00")]
    # flexible employment: 2% only (notes §2)
    assert credits(out, cf) == [("contribution", "100.00", "100.00")]


def test_weihai_retiree_credit_from_2024_and_at_70():
    m, r = "WH-ACC-OLD", "WH-ACC-RETIRING"
    p23 = b.pension(m, WH, "2023-12", "3600.00")
    p1 = b.pension(m, WH, "2024-01", "3600.00")
    p3 = b.pension(m, WH, "2024-03", "3600.00")
    p4 = b.pension(m, WH, "2024-04", "3600.00")
    rc = b.contribution(r, WH, "2024-05", "5000.00")
    rp = b.pension(r, WH, "2024-06", "3800.00")
    out = run(
        enrolled(m, WH, on="2022-07-01", person_type="retired", birth_date="1954-03-10", monthly_pension="3600.00"),
        enrolled(r, WH, birth_date="1964-05-01"),
        p23,
        p1,
        p3,
        p4,
        b.retired(r, WH, on="2024-05-10", pension="3800.00"),
        rc,
        rp,
    )
    # notes §2: retiree credit before 2024 is outside the seeds
    assert b.reason(out, p23) == "policy_not_configured"
    # 001 第二十四条: under 70 → 2% × 3500 [param] = 70.00; 70th birthday 2024-03-10 → 2.5% = 87.50 from April
    assert credits(out, p1) == [("retiree_credit", "70.00", "70.00")]
    assert credits(out, p3) == [("retiree_credit", "70.00", "140.00")]
    assert credits(out, p4) == [("retiree_credit", "87.50", "227.50")]
    # retiring in May 2024: May's contribution 2% only (2024, no employer part), retiree credit from June
    assert credits(out, rc) == [("contribution", "100.00", "100.00")]
    assert credits(out, rp) == [("retiree_credit", "70.00", "170.00")]


def test_nanjing_credits_legacy_new_retiree_and_2024():
    m, old, vet, new, bare = "NJ-ACC", "NJ-ACC-OLD", "NJ-ACC-VET", "NJ-ACC-NEW", "NJ-ACC-BARE"
    c = b.contribution(m, NJ, "2023-03", "7000.00")
    po23 = b.pension(old, NJ, "2023-03", "4321.00")
    po24 = b.pension(old, NJ, "2024-01", "4321.00")
    pv23 = b.pension(vet, NJ, "2023-03", "6000.00")
    pv24 = b.pension(vet, NJ, "2024-01", "6000.00")
    cn = b.contribution(new, NJ, "2023-06", "8000.00")
    pn7 = b.pension(new, NJ, "2023-07", "4100.00")
    pn12 = b.pension(new, NJ, "2023-12", "4100.00")
    pn24 = b.pension(new, NJ, "2024-01", "4100.00")
    pb = b.pension(bare, NJ, "2023-03", "3000.00")
    out = run(
        enrolled(m, NJ),
        enrolled(
            old,
            NJ,
            person_type="retired",
            birth_date="1958-01-01",
            legacy_monthly_credit="150.00",
            monthly_pension="4321.00",
        ),
        enrolled(
            vet,
            NJ,
            person_type="veteran_pre1949",
            birth_date="1931-01-01",
            legacy_monthly_credit="180.00",
            monthly_pension="6000.00",
        ),
        enrolled(new, NJ, birth_date="1963-06-01"),
        enrolled(bare, NJ, person_type="retired", birth_date="1959-01-01", monthly_pension="3000.00"),
        po23,
        pv23,
        pb,
        c,
        cn,
        b.retired(new, NJ, on="2023-06-15", pension="4000.00"),
        pn7,
        pn12,
        po24,
        pv24,
        pn24,
    )
    # 002 第五条: in service 2% of base: 7000 × 2% = 140
    assert credits(out, c) == [("contribution", "140.00", "140.00")]
    # 2023: the December-2022 amount carried on enrollment
    assert credits(out, po23) == [("retiree_credit", "150.00", "150.00")]
    assert credits(out, pv23) == [("retiree_credit", "180.00", "180.00")]
    # new retiree 2023: 5.4% × 4000 (pension on the retirement event) = 216.00, fixed for 2023 (第六条 次月起)
    assert credits(out, cn) == [("contribution", "160.00", "160.00")]
    assert credits(out, pn7) == [("retiree_credit", "216.00", "376.00")]
    assert credits(out, pn12) == [("retiree_credit", "216.00", "592.00")]
    # readings: a retiree with neither → not configured
    assert b.reason(out, pb) == "policy_not_configured"
    # 2024: 2.5% of the current pension: 4321 × 2.5% = 108.025 → 108.03; 4100 × 2.5% = 102.50
    assert credits(out, po24) == [("retiree_credit", "108.03", "258.03")]
    assert credits(out, pn24) == [("retiree_credit", "102.50", "694.50")]
    # veterans keep the December-2022 amount
    assert credits(out, pv24) == [("retiree_credit", "180.00", "360.00")]


# --- paying visits from the account ------------------------------------------------------------------------------


def test_own_visit_paid_from_account_and_refunded_on_reversal():
    m = "NX-PAYER"
    v = b.visit(m, NX, on="2023-07-01", items=[b.line("1000.00")], account=True)
    rev = b.reversed_visit(m, NX, v["visit_id"], on="2023-07-02")
    out = run(enrolled(m, NX), b.contribution(m, NX, "2023-06", "10000.00"), v, rev)
    # notes §0: member share 580 (see Ningxia worked example); account pays min(200, 580) = 200, cash 380
    s = b.settled(out, v)
    assert (s["member_share"], s["account_paid"], s["cash_paid"]) == ("580.00", "200.00", "380.00")
    assert (s["family_account_paid"], s["account_balance_after"]) == ("0.00", "0.00")
    b.assert_identities(s)
    [debit] = b.caused_by(out, v)
    assert (debit["kind"], debit["purpose"], debit["amount"], debit["balance_after"]) == (
        "debit",
        "visit_payment",
        "200.00",
        "0.00",
    )
    # readings: the refund goes back to the account that paid
    r = b.reversal_of(out, v)
    b.assert_reverses(r, s)
    assert (r["account_paid"], r["cash_paid"], r["account_balance_after"]) == ("-200.00", "-380.00", "200.00")
    [refund] = b.caused_by(out, rev)
    assert (refund["kind"], refund["member_id"], refund["amount"], refund["balance_after"]) == (
        "credit",
        m,
        "200.00",
        "200.00",
    )


def test_account_covers_share_in_full_and_pays_nothing_at_non_designated_facility():
    m = "NJ-PAYER"
    pharmacy = b.visit(
        m, NJ, on="2023-07-01", level=0, grade=None, kind="retail_pharmacy", items=[b.line("100.00")], account=True
    )
    elsewhere = b.visit(m, NJ, on="2023-07-02", designated=False, items=[b.line("300.00")], account=True)
    out = run(enrolled(m, NJ), b.contribution(m, NJ, "2023-06", "7000.00"), pharmacy, elsewhere)
    # designated pharmacy without prescription: no fund (002 第二十三条) but the account may pay (第八条(二))
    s1 = b.settled(out, pharmacy)
    assert (s1["fund_paid"], s1["account_paid"], s1["cash_paid"], s1["account_balance_after"]) == (
        "0.00",
        "100.00",
        "0.00",
        "40.00",
    )
    # readings: the account pays only at designated facilities (002 第八条)
    s2 = b.settled(out, elsewhere)
    assert (s2["account_paid"], s2["cash_paid"]) == ("0.00", "300.00")
    assert b.caused_by(out, elsewhere) == []


def test_resident_has_no_account():
    m = "WH-RES-PAYER"
    v = b.visit(m, WH, on="2023-03-01", level=1, grade=None, items=[b.line("500.00")], account=True)
    s = b.settled(run(enrolled(m, WH, person_type="resident_tier1"), v), v)
    # resident tier 1 at tier 1: threshold 100, base min(400, 200) × 50% = 100; share 400 all cash
    assert (s["fund_paid"], s["member_share"], s["account_paid"], s["cash_paid"]) == (
        "100.00",
        "400.00",
        "0.00",
        "400.00",
    )


# --- family use (家庭共济) ----------------------------------------------------------------------------------------


def test_family_visit_payment_needs_active_authorisation():
    holder, parent_in_law, stranger = "NX-HOLDER", "NX-SPOUSE-PARENT", "NX-STRANGER"
    v1 = b.visit(parent_in_law, NX, on="2023-07-01", items=[b.line("1000.00")], account=True, payer=holder)
    v2 = b.visit(stranger, NX, on="2023-07-02", items=[b.line("100.00")], account=True, payer=holder)
    rev = b.reversed_visit(parent_in_law, NX, v1["visit_id"], on="2023-07-03")
    revoke = b.aid_revoked(holder, NX, parent_in_law, relation="spouse_parent", on="2023-07-04")
    v3 = b.visit(parent_in_law, NX, on="2023-07-05", items=[b.line("100.00")], account=True, payer=holder)
    out = run(
        enrolled(holder, NX),
        enrolled(parent_in_law, NX, person_type="retired", birth_date="1950-02-02", monthly_pension="3000.00"),
        enrolled(stranger, NX),
        b.contribution(holder, NX, "2023-06", "10000.00"),
        b.aid_authorized(holder, NX, parent_in_law, relation="spouse_parent", on="2023-06-20"),
        v1,
        v2,
        rev,
        revoke,
        v3,
    )
    # 000 第七条 (包括配偶父母): retired 3A 65%: (1000 − 300) × 65% = 455; share 545; holder's 200 pays first
    s = b.settled(out, v1)
    assert (s["fund_paid"], s["member_share"], s["account_paid"], s["family_account_paid"], s["cash_paid"]) == (
        "455.00",
        "545.00",
        "200.00",
        "200.00",
        "345.00",
    )
    assert s["account_balance_after"] == "0.00"
    [debit] = b.caused_by(out, v1)
    assert (debit["member_id"], debit["purpose"], debit["beneficiary_id"], debit["amount"]) == (
        holder,
        "family_visit_payment",
        parent_in_law,
        "200.00",
    )
    # no authorisation → the visit is rejected, nothing settled
    assert b.reason(out, v2) == "family_not_authorized"
    assert [x for x in b.settlements(out) if x["visit_id"] == v2["visit_id"]] == []
    # reversal refunds the grantor
    [refund] = b.caused_by(out, rev)
    assert (refund["member_id"], refund["amount"], refund["balance_after"]) == (holder, "200.00", "200.00")
    # after revocation
    assert b.reason(out, v3) == "family_not_authorized"


@pytest.mark.parametrize("region", [NX, WH, NJ, IM])
@pytest.mark.parametrize("purpose", ["family_medical", "family_resident_premium"])
def test_family_payment_requests_with_and_without_authorisation(region, purpose):
    holder, child, other = f"{region}-HOLDER", f"{region}-CHILD", f"{region}-OTHER"
    ok = b.payment(holder, region, "60.00", purpose=purpose, beneficiary=child, on="2023-07-01")
    no = b.payment(holder, region, "60.00", purpose=purpose, beneficiary=other, on="2023-07-02")
    out = run(
        enrolled(holder, region, birth_date="1980-05-15"),
        b.contribution(holder, region, "2023-06", "10000.00"),
        b.aid_authorized(holder, region, child, relation="child", on="2023-06-20"),
        ok,
        no,
    )
    # notes §5: family member's self-pay and resident premium allowed everywhere with an active authorisation
    [debit] = b.caused_by(out, ok)
    assert (debit["kind"], debit["purpose"], debit["amount"], debit["beneficiary_id"]) == (
        "debit",
        purpose,
        "60.00",
        child,
    )
    assert b.reason(out, no) == "family_not_authorized"


def test_spouse_parent_is_family_only_in_ningxia():
    holder, in_law = "WH-HOLDER", "WH-IN-LAW"
    auth = b.aid_authorized(holder, WH, in_law, relation="spouse_parent", on="2023-06-20")
    pay = b.payment(holder, WH, "50.00", purpose="family_medical", beneficiary=in_law, on="2023-07-01")
    out = run(enrolled(holder, WH), b.contribution(holder, WH, "2023-06", "10000.00"), auth, pay)
    # readings: 001 第二十六条 配偶、父母、子女 only
    assert b.reason(out, auth) == "family_not_authorized"
    assert b.reason(out, pay) == "family_not_authorized"
    assert b.caused_by(out, pay) == []


# --- purposes (policy notes §5) ----------------------------------------------------------------------------------

ALLOWED = {
    #                         NX     WH     NJ     IM
    "own_medical": (True, True, True, True),
    "ltc_premium": (True, True, True, True),
    "supplementary_insurance": (False, True, True, False),
    "large_amount_premium": (False, False, False, True),
    "health_checkup": (False, False, True, False),
    "vaccine": (False, False, True, False),
    "family_doctor_fee": (False, False, True, False),
    "public_health": (False, False, False, False),
    "fitness": (False, False, False, False),
}
CASES = [
    (region, purpose, allowed[i]) for purpose, allowed in ALLOWED.items() for i, region in enumerate((NX, WH, NJ, IM))
]


@pytest.mark.parametrize(("region", "purpose", "allowed"), CASES)
def test_purposes_allowed_and_forbidden_per_region(region, purpose, allowed):
    m = f"{region}-PURPOSE"
    pay = b.payment(m, region, "10.00", purpose=purpose, on="2023-07-01")
    out = run(enrolled(m, region, birth_date="1980-05-15"), b.contribution(m, region, "2023-06", "10000.00"), pay)
    if allowed:
        [debit] = b.caused_by(out, pay)
        assert (debit["kind"], debit["purpose"], debit["amount"]) == ("debit", purpose, "10.00")
        assert b.rejected(out, pay) is None
    else:
        assert b.reason(out, pay) == "purpose_not_allowed"
        assert b.caused_by(out, pay) == []


# --- balance and closing -----------------------------------------------------------------------------------------


def test_insufficient_balance_rejected_and_balance_never_negative():
    m = "NX-SHORT"
    too_much = b.payment(m, NX, "200.01", on="2023-07-01")
    exact = b.payment(m, NX, "200.00", on="2023-07-02")
    again = b.payment(m, NX, "0.01", on="2023-07-03")
    out = run(enrolled(m, NX), b.contribution(m, NX, "2023-06", "10000.00"), too_much, exact, again)
    assert b.reason(out, too_much) == "insufficient_balance"
    assert b.caused_by(out, too_much) == []
    assert credits(out, exact) == [("own_medical", "200.00", "0.00")]
    assert b.reason(out, again) == "insufficient_balance"


@pytest.mark.parametrize(
    ("region", "reason", "month", "base", "balance"),
    [
        (NX, "death", "2023-07", "8000.00", "160.00"),  # 000 第九条: 2% × 8000
        (WH, "emigration", "2023-07", "8000.00", "220.00"),  # 001 第二十三条: 2% + 0.75% × 8000 = 160 + 60
        (NJ, "transfer_out", "2023-07", "8000.00", "160.00"),  # 002 第十一条: goes with the member
    ],
)
def test_termination_pays_out_once_and_closes_the_account(region, reason, month, base, balance):
    m = f"{region}-LEAVING"
    term = b.terminated(m, region, on="2023-09-01", reason=reason)
    later_pay = b.payment(m, region, "10.00", on="2023-09-02")
    later_credit = b.contribution(m, region, "2023-09", base, on="2023-09-15")
    later_visit = b.visit(m, region, on="2023-09-01", at="16:00:00")
    out = run(
        enrolled(m, region, birth_date="1985-01-01"),
        b.contribution(m, region, month, base),
        term,
        later_visit,
        later_pay,
        later_credit,
    )
    [payout] = b.caused_by(out, term)
    assert (payout["kind"], payout["purpose"], payout["amount"], payout["balance_after"]) == (
        "payout",
        reason,
        balance,
        "0.00",
    )
    assert len([x for x in b.movements(out, m) if x["kind"] == "payout"]) == 1
    # readings: every account event after the termination, and visits on or after its date, are rejected
    assert [b.reason(out, e) for e in (later_pay, later_credit, later_visit)] == ["member_terminated"] * 3
