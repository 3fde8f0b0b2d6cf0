"""Each class of contract violation is rejected with a detail that names the field."""

import pytest

from ledger.contract import InvalidEvent, decode_event
from ledger.contract.examples import example

DELETE = object()


def _set(payload, path, value):
    *parents, last = path.split(".")
    target = payload
    for step in parents:
        target = target[int(step)] if isinstance(target, list) else target[step]
    if isinstance(target, list):
        last = int(last)
    if value is DELETE:
        del target[last]
    else:
        target[last] = value


def _rejected(payload):
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    return caught.value


CASES = [
    # (event_type, field path, bad value, expected detail fragment)
    pytest.param("member.retired", "nickname", "x", "nickname: unknown field", id="unknown-field"),
    pytest.param("visit.submitted", "items.0.colour", "red", "items.0.colour: unknown field", id="unknown-item-field"),
    pytest.param(
        "visit.submitted", "designated", "yes", "designated: Input should be a valid boolean", id="bool-as-string"
    ),
    pytest.param(
        "visit.submitted", "pay_with_account", 1, "pay_with_account: Input should be a valid boolean", id="bool-as-int"
    ),
    pytest.param(
        "visit.submitted", "facility_level", "1", "facility_level: Input should be a valid integer", id="int-as-string"
    ),
    pytest.param(
        "visit.submitted", "facility_level", True, "facility_level: Input should be a valid integer", id="int-as-bool"
    ),
    pytest.param(
        "visit.submitted",
        "facility_level",
        4,
        "facility_level: Input should be less than or equal to 3",
        id="level-too-high",
    ),
    pytest.param(
        "visit.submitted",
        "facility_level",
        -1,
        "facility_level: Input should be greater than or equal to 0",
        id="level-negative",
    ),
    pytest.param("visit.submitted", "facility_grade", "C", "facility_grade: must be one of 'A', 'B'", id="bad-grade"),
    pytest.param(
        "visit.submitted",
        "prescription.facility_grade",
        "a",
        "prescription.facility_grade: must be one of",
        id="bad-prescriber-grade",
    ),
    pytest.param("visit.submitted", "visit_id", 42, "visit_id: Input should be a valid string", id="string-as-int"),
    pytest.param("visit.submitted", "visit_id", "", "visit_id: String should have at least 1 character", id="empty-id"),
    pytest.param(
        "member.terminated",
        "reason",
        "retired",
        "reason: must be one of 'death', 'emigration', 'transfer_out'",
        id="bad-enum",
    ),
    pytest.param("member.enrolled", "person_type", b"retired", "person_type: must be one of", id="enum-as-bytes"),
    pytest.param(
        "member.enrolled",
        "insurance_type",
        "EMPLOYEE",
        "insurance_type: must be one of 'employee', 'resident'",
        id="enum-wrong-case",
    ),
    pytest.param(
        "visit.submitted", "items.0.category", "food", "items.0.category: must be one of", id="bad-item-category"
    ),
    pytest.param("account.payment_requested", "purpose", "gym", "purpose: must be one of", id="bad-purpose"),
    pytest.param("family.aid_authorized", "relation", "cousin", "relation: must be one of", id="bad-relation"),
    pytest.param(
        "member.chronic_certified", "kind", "rare", "kind: must be one of 'common', 'special'", id="bad-chronic-kind"
    ),
    pytest.param(
        "member.enrolled", "birth_date", "2023-02-30", "birth_date: not a real calendar date", id="impossible-date"
    ),
    pytest.param(
        "member.enrolled", "effective_date", "2023-13-01", "effective_date: not a real calendar date", id="month-13"
    ),
    pytest.param(
        "member.enrolled",
        "effective_date",
        "2023-1-01",
        "effective_date: must be a date string YYYY-MM-DD",
        id="short-date",
    ),
    pytest.param(
        "member.enrolled",
        "effective_date",
        "20230101",
        "effective_date: must be a date string YYYY-MM-DD",
        id="compact-date",
    ),
    pytest.param(
        "member.enrolled",
        "effective_date",
        20230101,
        "effective_date: must be a date string YYYY-MM-DD",
        id="date-as-int",
    ),
    pytest.param(
        "member.retired",
        "occurred_at",
        "2024-03-01T09:30:00",
        "occurred_at: needs an explicit UTC offset",
        id="naive-datetime",
    ),
    pytest.param(
        "member.retired",
        "occurred_at",
        "2024-03-01 09:30:00+08:00",
        "occurred_at: must be an RFC 3339 date-time",
        id="space-separator",
    ),
    pytest.param(
        "member.retired", "occurred_at", "2024-03-01", "occurred_at: must be an RFC 3339 date-time", id="date-only"
    ),
    pytest.param(
        "member.retired",
        "occurred_at",
        "2024-02-30T09:30:00+08:00",
        "occurred_at: not a real date and time",
        id="impossible-datetime",
    ),
    pytest.param(
        "member.retired", "occurred_at", 1709256600, "occurred_at: must be an RFC 3339 date-time", id="epoch-seconds"
    ),
    pytest.param("member.retired", "schema_version", 2, "schema_version: Input should be 1", id="schema-version-2"),
    pytest.param(
        "member.retired", "schema_version", "1", "schema_version: must be the integer 1", id="schema-version-string"
    ),
    pytest.param(
        "member.retired", "schema_version", True, "schema_version: must be the integer 1", id="schema-version-bool"
    ),
    pytest.param(
        "member.retired",
        "region",
        "110000",
        "region: must be one of '640000', '371000', '320100', '150000'",
        id="unknown-region",
    ),
    pytest.param("member.retired", "region", 320100, "region: must be one of", id="region-as-int"),
    pytest.param(
        "member.retired", "event_id", "", "event_id: String should have at least 1 character", id="empty-event-id"
    ),
    pytest.param(
        "member.retired", "event_id", "e" * 65, "event_id: String should have at most 64 characters", id="long-event-id"
    ),
    pytest.param(
        "member.retired",
        "member_id",
        "m" * 41,
        "member_id: String should have at most 40 characters",
        id="long-member-id",
    ),
    pytest.param("member.retired", "member_id", DELETE, "member_id: field required", id="missing-member-id"),
    pytest.param("member.retired", "monthly_pension", DELETE, "monthly_pension: field required", id="missing-money"),
    pytest.param(
        "member.retired",
        "monthly_pension",
        "4200.001",
        "monthly_pension: at most 2 decimal places allowed",
        id="money-3-decimals",
    ),
    pytest.param(
        "member.retired", "monthly_pension", "-1.00", "monthly_pension: must not be negative", id="money-negative"
    ),
    pytest.param(
        "visit.submitted",
        "items.0.amount",
        "1.005",
        "items.0.amount: at most 2 decimal places allowed",
        id="item-money-precision",
    ),
    pytest.param(
        "account.contribution_posted", "month", "2024-13", "month: must be a month YYYY-MM", id="month-13-of-year"
    ),
    pytest.param(
        "account.contribution_posted", "month", "2024-02-01", "month: must be a month YYYY-MM", id="month-with-day"
    ),
    pytest.param("account.pension_paid", "month", 202402, "month: Input should be a valid string", id="month-as-int"),
    pytest.param("period.year_closed", "year", "2024", "year: Input should be a valid integer", id="year-as-string"),
    pytest.param("visit.submitted", "items", [], "items: at least 1 item(s) required", id="empty-items"),
    pytest.param("visit.submitted", "items", DELETE, "items: field required", id="missing-items"),
    pytest.param("visit.submitted", "items", {"0": {}}, "items: must be a list", id="items-not-a-list"),
    pytest.param(
        "visit.submitted",
        "disease_code",
        DELETE,
        "disease_code: required when visit_kind is 'chronic'",
        id="chronic-without-disease",
    ),
    pytest.param(
        "visit.submitted",
        "disease_code",
        None,
        "disease_code: required when visit_kind is 'chronic'",
        id="chronic-null-disease",
    ),
    pytest.param(
        "family.aid_authorized",
        "beneficiary_id",
        DELETE,
        "beneficiary_id: field required",
        id="aid-without-beneficiary",
    ),
    pytest.param("family.aid_revoked", "relation", DELETE, "relation: field required", id="aid-without-relation"),
    pytest.param(
        "account.payment_requested",
        "beneficiary_id",
        DELETE,
        "beneficiary_id: required when purpose is 'family_medical'",
        id="family-payment-without-beneficiary",
    ),
    pytest.param(
        "member.enrolled",
        "designated_facilities",
        ["H1", ""],
        "designated_facilities.1: String should have at least 1 character",
        id="empty-facility-id",
    ),
    pytest.param(
        "member.enrolled",
        "remote_pilot",
        "false",
        "remote_pilot: Input should be a valid boolean",
        id="pilot-as-string",
    ),
]


@pytest.mark.parametrize(("event_type", "path", "value", "fragment"), CASES)
def test_violation_is_rejected_naming_the_field(event_type, path, value, fragment):
    payload = example(event_type)
    _set(payload, path, value)
    error = _rejected(payload)
    assert fragment in error.detail
    assert error.reason == "invalid_event"
    assert error.payload is payload
    assert str(error) == error.detail
    given = payload.get("event_id")
    expected_id = given if isinstance(given, str) and 0 < len(given) <= 64 else None  # only a valid id names it
    assert error.event_id == expected_id


def test_item_parts_exceeding_amount_name_the_item_index():
    payload = example("visit.submitted")
    payload["items"][1].update(amount="20.00", out_of_catalog_amount="15.00", pre_self_pay_amount="5.01")
    error = _rejected(payload)
    assert error.detail == ("items.1: out_of_catalog_amount + pre_self_pay_amount (20.01) exceeds amount (20.00)")


def test_family_resident_premium_also_needs_a_beneficiary():
    payload = example("account.payment_requested")
    payload["purpose"] = "family_resident_premium"
    payload["beneficiary_id"] = None
    assert _rejected(payload).detail == ("beneficiary_id: required when purpose is 'family_resident_premium'")


def test_member_id_must_be_absent_on_year_closed():
    payload = example("period.year_closed")
    payload["member_id"] = "32010019800101001X"
    error = _rejected(payload)
    assert error.detail == "member_id: must be absent on region-level event period.year_closed"
    assert error.event_id == payload["event_id"]


@pytest.mark.parametrize(
    ("event_type", "detail"),
    [
        (DELETE, "event_type: field required"),
        ("member.promoted", "event_type: unknown event type 'member.promoted'"),
        (7, "event_type: unknown event type 7"),
    ],
)
def test_missing_or_unknown_event_type(event_type, detail):
    payload = example("member.retired")
    _set(payload, "event_type", event_type)
    assert _rejected(payload).detail == detail


def test_every_error_is_reported_joined_with_semicolons():
    payload = example("visit.submitted")
    payload.update(designated="yes", facility_level=9, surprise=1)
    payload["items"][0]["amount"] = "1.234"
    details = _rejected(payload).detail.split("; ")
    assert len(details) == 4
    assert any(d.startswith("facility_level: ") for d in details)
    assert any(d.startswith("designated: ") for d in details)
    assert any(d.startswith("items.0.amount: at most 2 decimal places") for d in details)
    assert "surprise: unknown field" in details


def test_detail_shows_the_offending_value():
    payload = example("visit.submitted")
    payload["designated"] = "yes"
    assert _rejected(payload).detail == "designated: Input should be a valid boolean (got 'yes')"


def test_unreadable_event_id_is_reported_as_none():
    payload = example("member.retired")
    payload["event_id"] = 12345
    error = _rejected(payload)
    assert error.event_id is None
    assert "event_id: Input should be a valid string" in error.detail


def test_one_bad_item_reports_itself_and_not_an_empty_list():
    from ledger.contract import InvalidEvent, decode_event
    from ledger.contract.examples import example

    visit = example("visit.submitted")
    visit["items"] = [{**visit["items"][0], "amount": "100.001"}]
    with pytest.raises(InvalidEvent) as refused:
        decode_event(visit)
    assert refused.value.detail == "items.0.amount: at most 2 decimal places allowed (got '100.001')"
