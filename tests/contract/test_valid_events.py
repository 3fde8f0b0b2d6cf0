import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pydantic
import pytest

from ledger.contract import (
    EVENT_CLASSES,
    EVENT_TYPES,
    ChronicCertified,
    ContributionPosted,
    FacilityGrade,
    FacilityKind,
    InsuranceType,
    MemberEnrolled,
    PaymentRequested,
    PensionPaid,
    Purpose,
    Region,
    VisitItem,
    VisitKind,
    VisitSubmitted,
    YearClosed,
    decode_event,
    decode_line,
)
from ledger.contract.examples import example, example_types

EXPECTED_TYPES = {
    "member.enrolled": "MemberEnrolled",
    "member.retired": "MemberRetired",
    "member.insurance_type_changed": "InsuranceTypeChanged",
    "member.contribution_interrupted": "ContributionInterrupted",
    "member.contribution_resumed": "ContributionResumed",
    "member.terminated": "MemberTerminated",
    "member.chronic_certified": "ChronicCertified",
    "member.chronic_cap_adjusted": "ChronicCapAdjusted",
    "member.chronic_revoked": "ChronicRevoked",
    "family.aid_authorized": "FamilyAidAuthorized",
    "family.aid_revoked": "FamilyAidRevoked",
    "account.contribution_posted": "ContributionPosted",
    "account.contribution_corrected": "ContributionCorrected",
    "account.pension_paid": "PensionPaid",
    "account.payment_requested": "PaymentRequested",
    "account.external_fund_payment": "ExternalFundPayment",
    "visit.submitted": "VisitSubmitted",
    "visit.reversed": "VisitReversed",
    "period.year_closed": "YearClosed",
}


def test_contract_lists_exactly_the_documented_event_types():
    assert {t: c.__name__ for t, c in EVENT_TYPES.items()} == EXPECTED_TYPES
    assert len(EVENT_CLASSES) == 19
    assert set(example_types()) == set(EXPECTED_TYPES)


@pytest.mark.parametrize("event_type", sorted(EXPECTED_TYPES))
def test_every_example_decodes_to_its_class(event_type):
    payload = example(event_type)
    event = decode_event(payload)
    assert type(event).__name__ == EXPECTED_TYPES[event_type]
    assert event.event_type == event_type
    assert event.event_id == payload["event_id"]
    assert event.schema_version == 1
    assert event.region is Region.NANJING
    assert event.occurred_at == datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))


@pytest.mark.parametrize("event_type", sorted(EXPECTED_TYPES))
def test_every_example_decodes_from_a_json_line_str_and_bytes(event_type):
    line = json.dumps(example(event_type))
    from_text = decode_line(line)
    from_bytes = decode_line((line + "\n").encode("utf-8"))
    assert from_text == from_bytes == decode_event(example(event_type))


@pytest.mark.parametrize("event_type", sorted(EXPECTED_TYPES))
def test_dumped_json_decodes_back_to_an_equal_event(event_type):
    event = decode_event(example(event_type))
    again = decode_line(event.model_dump_json(exclude_none=True))
    assert again == event


def test_events_are_frozen_including_their_item_lists():
    event = decode_event(example("visit.submitted"))
    with pytest.raises(pydantic.ValidationError):
        event.member_id = "someone-else"
    assert isinstance(event.items, tuple)
    with pytest.raises(pydantic.ValidationError):
        event.items[0].amount = Decimal("1")


def test_member_enrolled_fields_and_defaults():
    event = decode_event(example("member.enrolled"))
    assert isinstance(event, MemberEnrolled)
    assert event.insurance_type is InsuranceType.EMPLOYEE
    assert event.insurance_type == "employee"  # StrEnum: plain-string comparison still works
    assert event.birth_date == date(1980, 1, 1)
    assert event.contribution_base == Decimal("8000.00")
    assert event.legacy_monthly_credit == Decimal("120.50")
    # Optional fields the example leaves out default to None, remote_pilot included.
    assert event.monthly_pension is None
    assert event.designated_facilities is None
    assert event.remote_pilot is None


def test_member_enrolled_optional_regional_fields():
    payload = example("member.enrolled")
    payload.update(region="371000", designated_facilities=["H1", "H2"], remote_pilot=False)
    event = decode_event(payload)
    assert event.designated_facilities == ("H1", "H2")
    assert event.remote_pilot is False


def test_chronic_certified_kind_is_optional():
    payload = example("member.chronic_certified")
    del payload["kind"]
    event = decode_event(payload)
    assert isinstance(event, ChronicCertified)
    assert event.kind is None
    assert decode_event(example("member.chronic_certified")).kind == "common"


def test_visit_submitted_structure():
    event = decode_event(example("visit.submitted"))
    assert isinstance(event, VisitSubmitted)
    assert event.visit_kind is VisitKind.CHRONIC
    assert event.facility_grade is None
    assert event.prescription is not None
    assert event.prescription.facility_grade is FacilityGrade.A
    assert event.prescription.facility_kind is FacilityKind.GENERAL_HOSPITAL
    assert [type(item) for item in event.items] == [VisitItem, VisitItem]
    assert event.items[0].pre_self_pay_amount == Decimal("12.84")
    assert event.items[1].amount == event.items[1].out_of_catalog_amount == Decimal(20)


def test_general_visit_needs_no_disease_code_and_parts_may_equal_amount():
    payload = example("visit.submitted")
    payload.update(visit_kind="general", facility_kind="community_health_center", prescription=None)
    del payload["disease_code"]
    payload["items"][0].update(amount="10.00", out_of_catalog_amount="4.00", pre_self_pay_amount="6.00")
    event = decode_event(payload)
    assert event.disease_code is None
    assert event.items[0].amount == Decimal("10.00")


def test_payment_requested_for_own_purpose_needs_no_beneficiary():
    payload = example("account.payment_requested")
    payload["purpose"] = "own_medical"
    del payload["beneficiary_id"]
    del payload["facility_id"]
    event = decode_event(payload)
    assert isinstance(event, PaymentRequested)
    assert event.purpose is Purpose.OWN_MEDICAL
    assert event.beneficiary_id is None and event.facility_id is None


@pytest.mark.parametrize("event_type", ["account.contribution_posted", "account.pension_paid"])
def test_month_stays_a_string_with_a_month_start_date(event_type):
    event = decode_event(example(event_type))
    assert isinstance(event, (ContributionPosted, PensionPaid))
    assert event.month == "2024-02"
    assert event.month_start == date(2024, 2, 1)


def test_year_closed_has_no_member_id():
    event = decode_event(example("period.year_closed"))
    assert isinstance(event, YearClosed)
    assert event.year == 2024
    assert not hasattr(event, "member_id")


@pytest.mark.parametrize(
    "stamp",
    ["2024-03-01T01:30:00Z", "2024-03-01t01:30:00z", "2024-03-01T09:30:00.250+08:00", "2024-02-29T20:30:00-05:00"],
)
def test_rfc3339_variants_are_accepted(stamp):
    payload = example("visit.reversed")
    payload["occurred_at"] = stamp
    event = decode_event(payload)
    assert event.occurred_at.utcoffset() is not None
    assert event.business_date == date(2024, 3, 1)


def test_python_callers_may_pass_date_and_aware_datetime_objects():
    payload = example("member.retired")
    payload["effective_date"] = date(2024, 2, 15)
    payload["occurred_at"] = datetime(2024, 3, 1, 1, 30, tzinfo=UTC)
    event = decode_event(payload)
    assert event.effective_date == date(2024, 2, 15)
    assert event.business_date == date(2024, 3, 1)
