"""Rejections: every refused event comes out as `{"rejected", "reason", "detail", "payload"}` and the stream goes on.

Event contract (Rejection, envelope rules), policy notes §0, docs/readings.md.
"""

import json

import pytest

from ledger.offline import settle_lines
from tests import builders as b

NX, WH, NJ, IM = b.NINGXIA, b.WEIHAI, b.NANJING, b.INNER_MONGOLIA
START = {NX: "2023-06-01", WH: "2022-07-01", NJ: "2023-01-01", IM: "2022-10-01"}


run = b.settle


def enrolled(member, region=NX, **kw):
    kw.setdefault("on", START[region])
    return b.enrolled(member, region, **kw)


def payload_of(r):
    return json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]


def assert_rejected(out, event, reason):
    r = b.rejected(out, event)
    assert r is not None, f"{event['event_id']} was not rejected: {out}"
    assert r["reason"] == reason, r
    assert isinstance(r["detail"], str) and r["detail"].strip()
    assert payload_of(r)["event_id"] == event["event_id"]


# --- membership --------------------------------------------------------------------------------------------------


def test_member_not_enrolled():
    m = "NX-FUTURE"
    stranger = b.visit("NX-NOBODY", NX, on="2023-07-01")
    stranger_pay = b.payment("NX-NOBODY", NX, "10.00", on="2023-07-01")
    early = b.visit(m, NX, on="2023-07-15")
    on_time = b.visit(m, NX, on="2023-08-01", items=[b.line("1000.00")])
    out = run(enrolled(m, on="2023-07-01", effective_date="2023-08-01"), stranger, stranger_pay, early, on_time)
    assert_rejected(out, stranger, "member_not_enrolled")
    assert_rejected(out, stranger_pay, "member_not_enrolled")
    # notes §0: a visit before the enrollment takes effect
    assert_rejected(out, early, "member_not_enrolled")
    assert b.settled(out, on_time)["fund_paid"] == "420.00"


def test_member_terminated_from_the_termination_date():
    m = "NX-GONE"
    before = b.visit(m, NX, on="2023-08-31", items=[b.line("1000.00")])
    same_day = b.visit(m, NX, on="2023-09-01", at="15:00:00")
    later = b.visit(m, NX, on="2023-10-01")
    out = run(enrolled(m), before, b.terminated(m, NX, on="2023-09-01", reason="death"), same_day, later)
    assert b.settled(out, before)["fund_paid"] == "420.00"
    # readings: visits dated on or after the termination date
    assert_rejected(out, same_day, "member_terminated")
    assert_rejected(out, later, "member_terminated")


# --- visits and reversals ----------------------------------------------------------------------------------------


def test_duplicate_visit_id_rejected_and_not_applied():
    m = "NX-DUP"
    v1 = b.visit(m, NX, on="2023-07-01", items=[b.line("1000.00")])
    again = b.visit(m, NX, on="2023-07-01", visit_id=v1["visit_id"], items=[b.line("1000.00")])
    v2 = b.visit(m, NX, on="2023-07-02", items=[b.line("1000.00")])
    out = run(enrolled(m), v1, again, v2)
    assert_rejected(out, again, "duplicate_visit")
    assert len([s for s in b.settlements(out) if s["visit_id"] == v1["visit_id"]]) == 1
    # the duplicate consumed nothing: v2 pays 1000 × 60% = 600 with the threshold already met by v1 only
    s2 = b.settled(out, v2)
    assert (s2["deductible_paid"], s2["fund_paid"], s2["limit_remaining"]) == ("0.00", "600.00", "2980.00")


def test_repeated_event_id_is_acknowledged_not_applied_twice():
    m = "NX-REPEAT"
    v = b.visit(m, NX, on="2023-07-01", items=[b.line("1000.00")])
    out = run(enrolled(m), v, v)
    # event contract: event_id is the idempotency key
    assert len([s for s in b.settlements(out) if s["visit_id"] == v["visit_id"]]) == 1
    assert b.rejected(out, v) is None


def test_unknown_and_already_reversed_visits():
    m = "NX-REV"
    v = b.visit(m, NX, on="2023-07-01")
    ghost = b.reversed_visit(m, NX, "NO-SUCH-VISIT", on="2023-07-02")
    first = b.reversed_visit(m, NX, v["visit_id"], on="2023-07-03")
    second = b.reversed_visit(m, NX, v["visit_id"], on="2023-07-04")
    out = run(enrolled(m), v, ghost, first, second)
    assert_rejected(out, ghost, "unknown_visit")
    b.assert_reverses(b.reversal_of(out, v), b.settled(out, v))
    assert_rejected(out, second, "already_reversed")


def test_closed_year_rejects_visits_reversals_and_a_second_close():
    m = "NX-CLOSED"
    v = b.visit(m, NX, on="2023-12-20")
    close = b.year_closed(NX, 2023)
    late = b.visit(m, NX, on="2023-12-31", at="23:00:00")
    late_rev = b.reversed_visit(m, NX, v["visit_id"], on="2024-01-02")
    again = b.year_closed(NX, 2023, on="2024-01-03")
    next_year = b.visit(m, NX, on="2024-01-05", items=[b.line("1000.00")])
    out = run(enrolled(m), v, close, late, late_rev, again, next_year)
    assert_rejected(out, late, "year_closed")
    assert_rejected(out, late_rev, "year_closed")
    assert_rejected(out, again, "year_closed")
    assert [s for s in b.settlements(out) if s.get("reverses")] == []
    assert b.settled(out, next_year)["fund_paid"] == "420.00"


# --- policy not configured ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "before", "first_day"),
    [
        (NX, "2023-05-31", "2023-06-01"),  # 000 第三十五条
        (WH, "2022-06-30", "2022-07-01"),  # 001 第四十条
        (NJ, "2022-12-31", "2023-01-01"),  # 002 第三十二条
    ],
)
def test_visit_before_the_document_takes_effect(region, before, first_day):
    m = f"{region}-EARLY"
    early = b.visit(m, region, on=before, level=1, grade=None)
    first = b.visit(m, region, on=first_day, level=1, grade=None)
    out = run(enrolled(m, region, on="2022-01-01"), early, first)
    assert_rejected(out, early, "policy_not_configured")
    assert b.settled(out, first)["policy_id"].startswith(region)


@pytest.mark.parametrize(("region", "month"), [(NX, "2023-05"), (WH, "2022-06"), (NJ, "2022-12"), (IM, "2022-09")])
def test_contribution_before_the_document_takes_effect(region, month):
    m = f"{region}-EARLY-PAY"
    c = b.contribution(m, region, month, "5000.00")
    out = run(enrolled(m, region, on="2022-01-01"), c)
    assert_rejected(out, c, "policy_not_configured")
    assert b.caused_by(out, c) == []


def test_effective_date_read_in_asia_shanghai():
    m = "NX-TZ"
    # 2023-05-31 23:30 in Shanghai (written in +09:00) → before 000 takes effect
    early = b.visit(m, NX, occurred_at="2023-06-01T00:30:00+09:00")
    # 2023-06-01 01:00 in Shanghai (written in UTC) → settles
    ok = b.visit(m, NX, occurred_at="2023-05-31T17:00:00+00:00", items=[b.line("1000.00")])
    out = run(enrolled(m, on="2022-01-01"), early, ok)
    assert_rejected(out, early, "policy_not_configured")
    assert b.settled(out, ok)["fund_paid"] == "420.00"


@pytest.mark.parametrize("region", [NX, NJ])
def test_resident_visits_outside_weihai_not_configured(region):
    m = f"{region}-RESIDENT"
    v = b.visit(m, region, on="2023-07-01")
    out = run(enrolled(m, region, person_type="resident_tier1"), v)
    assert_rejected(out, v, "policy_not_configured")


def test_inner_mongolia_visit_without_parameters():
    m = "IM-NOPARAMS"
    v = b.visit(m, IM, on="2023-07-01")
    out = run(enrolled(m, IM), v)
    assert_rejected(out, v, "policy_not_configured")


# --- invalid events ----------------------------------------------------------------------------------------------


def test_malformed_line_does_not_stop_the_stream():
    m = "NX-MALFORMED"
    v = b.visit(m, NX, on="2023-07-01", items=[b.line("1000.00")])
    out = settle_lines([b.as_line(enrolled(m)), '{"event_id": "broken", "event_type": ', b.as_line(v)])
    [r] = b.rejections(out)
    # the line number (1-based) for unparseable input
    assert str(r["rejected"]) == "2" and r["reason"] == "invalid_event" and r["detail"]
    assert b.settled(out, v)["fund_paid"] == "420.00"
    assert out.index(r) < out.index(b.settled(out, v))


def _bad_amount(e):
    e["items"][0]["amount"] = "1000.005"


def _unknown_field(e):
    e["favourite_colour"] = "blue"


def _negative_amount(e):
    e["items"][0]["amount"] = "-10.00"


def _unknown_enum(e):
    e["facility_kind"] = "spa"


def _missing_field(e):
    del e["visit_id"]


def _negative_in_policy(e):
    e["items"][0]["out_of_catalog_amount"] = "1200.00"


def _no_offset(e):
    e["occurred_at"] = "2023-07-01T10:00:00"


def _unknown_type(e):
    e["event_type"] = "visit.teleported"


def _schema_version(e):
    e["schema_version"] = 2


def _wrong_type(e):
    e["facility_level"] = "three"


@pytest.mark.parametrize(
    "mutate",
    [
        _bad_amount,
        _unknown_field,
        _negative_amount,
        _unknown_enum,
        _missing_field,
        _negative_in_policy,
        _no_offset,
        _unknown_type,
        _schema_version,
        _wrong_type,
    ],
)
def test_invalid_event_rejected_and_stream_continues(mutate):
    m = "NX-INVALID"
    bad = b.visit(m, NX, on="2023-07-01", items=[b.line("1000.00")])
    mutate(bad)
    good = b.visit(m, NX, on="2023-07-02", items=[b.line("1000.00")])
    out = run(enrolled(m), bad, good)
    assert_rejected(out, bad, "invalid_event")
    # nothing of the invalid visit was applied: the good one pays the whole threshold
    assert b.core(b.settled(out, good)) == ("300.00", "420.00", "0.00", "580.00")


def test_money_as_json_number_is_accepted_with_two_decimals_at_most():
    m = "NX-NUMBERS"
    ok = b.visit(m, NX, on="2023-07-01", items=[b.line("0")])
    ok["items"][0]["amount"] = 1000.5
    bad = b.visit(m, NX, on="2023-07-02", items=[b.line("777.77")])
    bad_line = b.as_line(bad).replace('"777.77"', "100.125")
    assert "100.125" in bad_line
    out = settle_lines([b.as_line(enrolled(m)), b.as_line(ok), bad_line])
    # event contract: money is a string or number with at most 2 decimals: (1000.50 − 300) × 60% = 420.30
    s = b.settled(out, ok)
    assert (s["total_amount"], s["fund_paid"]) == ("1000.50", "420.30")
    assert b.reason(out, bad) == "invalid_event"


def test_re_enrolment_in_the_same_year_keeps_the_accumulators_and_a_reversal_returns_to_them():
    """policy notes §0: accumulators reset on 1 January, not on re-enrolment; a reversal of a visit from the
    earlier enrolment returns exactly what it consumed (000 第十一条 figures)."""
    b.fresh()
    m, NX = "NX-AGAIN", b.NINGXIA
    v1 = b.visit(m, NX, on="2023-07-01", items=[b.line("1000.00")])
    v2 = b.visit(m, NX, on="2023-09-05", items=[b.line("1000.00")])
    v3 = b.visit(m, NX, on="2023-09-07", items=[b.line("1000.00")])
    out = settle_lines(
        b.lines(
            b.enrolled(m, NX, on="2023-06-01"),
            v1,
            b.terminated(m, NX, on="2023-08-01", reason="transfer_out"),
            b.enrolled(m, NX, on="2023-09-01"),
            v2,
            b.reversed_visit(m, NX, v1["visit_id"], on="2023-09-06"),
            v3,
        )
    )
    # v1: deductible 300, fund 700 × 60% = 420; v2: deductible already met → 1000 × 60% = 600
    assert b.core(b.settled(out, v1))[:2] == ("300.00", "420.00")
    assert b.core(b.settled(out, v2))[:2] == ("0.00", "600.00")
    # the reversal gives back v1's 300 deductible and 420 fund: v3 pays the deductible again
    assert b.core(b.settled(out, v3))[:2] == ("300.00", "420.00")
    assert b.settled(out, v3)["limit_remaining"] == "2980.00"  # 4000 − 600 − 420


def test_a_late_visit_from_an_earlier_enrolment_still_settles_and_a_gap_is_not_covered():
    b.fresh()
    m, NJ = "NJ-GAP", b.NANJING
    early = b.visit(m, NJ, on="2023-05-10", items=[b.line("100.00")])
    in_gap = b.visit(m, NJ, on="2023-07-15", items=[b.line("100.00")])
    out = settle_lines(
        b.lines(
            b.enrolled(m, NJ, on="2023-01-01"),
            b.terminated(m, NJ, on="2023-06-30", reason="transfer_out"),
            b.enrolled(m, NJ, on="2023-08-01"),
            early,
            in_gap,
        )
    )
    assert b.settled(out, early)["fund_paid"] == "40.00"  # 002 第十四条: non-community band 1, 100 × 40%
    assert b.reason(out, in_gap) == "member_not_enrolled"


def test_a_year_close_after_a_re_enrolment_still_evaluates_the_whole_year():
    """Enrolled all of 2023, transferred out and back in January 2024: 2023 earns the 200 (002 第七条)."""
    b.fresh()
    m, NJ = "NJ-BACK", b.NANJING
    out = settle_lines(
        b.lines(
            b.enrolled(m, NJ, on="2023-01-01"),
            b.terminated(m, NJ, on="2024-01-05", reason="transfer_out"),
            b.enrolled(m, NJ, on="2024-01-10"),
            b.year_closed(NJ, 2023, on="2024-01-15"),
        )
    )
    (evaluation,) = b.incentives(out, m, 2023)
    assert int(evaluation["after"]) == 1
    assert [c["amount"] for c in b.movements(out, m, "health_incentive")] == ["200.00"]


def test_weihai_re_enrolment_under_the_other_insurance_type_restarts_the_general_limit():
    """001 第十一条: 变更参保类型 restarts the deductible and the limit, however the change arrives."""
    b.fresh()
    m, WH = "WH-SWITCH", b.WEIHAI
    used = b.visit(m, WH, on="2023-02-01", items=[b.line("3000.00")], level=1, grade=None)
    after = b.visit(m, WH, on="2023-06-01", items=[b.line("500.00")], level=1, grade=None)
    out = settle_lines(
        b.lines(
            b.enrolled(m, WH, on="2023-01-01"),
            used,
            b.terminated(m, WH, on="2023-03-01", reason="transfer_out"),
            b.enrolled(m, WH, on="2023-04-01", person_type="resident_tier1"),
            after,
        )
    )
    assert b.settled(out, used)["limit_remaining"] == "0.00"  # 3000 − 300 deductible > 1600 limit
    # resident tier 1 from zero: deductible 100, base min(400, 200) = 200 at 50% = 100, over the limit 200
    assert b.core(b.settled(out, after))[:3] == ("100.00", "100.00", "200.00")


def test_a_village_clinic_is_below_tier_1_whatever_level_it_reports():
    b.fresh()
    m, NX = "NX-VILLAGE", b.NINGXIA
    general = b.visit(m, NX, on="2023-07-01", items=[b.line("100.00")], level=1, grade=None, kind="village_clinic")
    chronic = b.chronic_visit(
        m, NX, "J45", on="2023-07-02", items=[b.line("1000.00")], level=1, grade=None, kind="village_clinic"
    )
    out = settle_lines(
        b.lines(
            b.enrolled(m, NX, on="2023-06-01"),
            b.chronic_certified(m, NX, "J45", "3000.00", on="2023-06-01"),
            general,
            chronic,
        )
    )
    assert b.settled(out, general)["fund_paid"] == "0.00"  # 000 第十条
    assert b.settled(out, chronic)["fund_paid"] == "0.00"  # 003 一(一): only 两病 under the remote pilot
