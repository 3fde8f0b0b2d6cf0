"""One valid wire example per event type, for tests, docs and benchmarks.

``example()`` hands out a fresh deep copy so callers can mutate it into an invalid variant.
"""

from __future__ import annotations

import copy
from typing import Any

_ENVELOPE = {"schema_version": 1, "occurred_at": "2024-03-01T09:30:00+08:00", "region": "320100"}
_MEMBER = {**_ENVELOPE, "member_id": "32010019800101001X"}
_CHILD = "320100201001010022"

_EXAMPLES: dict[str, dict[str, Any]] = {
    "member.enrolled": {
        **_MEMBER,
        "insurance_type": "employee",
        "person_type": "in_service",
        "birth_date": "1980-01-01",
        "effective_date": "2023-01-01",
        "contribution_base": "8000.00",
        "legacy_monthly_credit": "120.50",
    },
    "member.retired": {**_MEMBER, "effective_date": "2024-02-15", "monthly_pension": "4200.00"},
    "member.insurance_type_changed": {
        **_MEMBER,
        "insurance_type": "resident",
        "person_type": "resident_tier1",
        "effective_date": "2024-01-01",
    },
    "member.contribution_interrupted": {**_MEMBER, "effective_date": "2024-02-01"},
    "member.contribution_resumed": {**_MEMBER, "effective_date": "2024-05-01"},
    "member.terminated": {**_MEMBER, "reason": "transfer_out", "effective_date": "2024-06-30"},
    "member.chronic_certified": {
        **_MEMBER,
        "disease_code": "E11.9",
        "annual_cap": "3000",
        "kind": "common",
        "effective_date": "2024-01-01",
    },
    "member.chronic_cap_adjusted": {
        **_MEMBER,
        "disease_code": "E11.9",
        "annual_cap": 4000,
        "effective_date": "2024-07-01",
    },
    "member.chronic_revoked": {**_MEMBER, "disease_code": "E11.9", "effective_date": "2024-12-01"},
    "family.aid_authorized": {**_MEMBER, "beneficiary_id": _CHILD, "relation": "child"},
    "family.aid_revoked": {**_MEMBER, "beneficiary_id": _CHILD, "relation": "child"},
    "account.contribution_posted": {
        **_MEMBER,
        "month": "2024-02",
        "contribution_base": "8000.00",
        "individual_amount": "160.00",
        "employer_amount": "720.00",
    },
    "account.contribution_corrected": {
        **_MEMBER,
        "month": "2024-02",
        "contribution_base": "8500.00",
        "individual_amount": "170.00",
        "employer_amount": "765.00",
        "reason": "base revised after the annual wage declaration",
    },
    "account.pension_paid": {**_MEMBER, "month": "2024-02", "monthly_pension": "4200.00"},
    "account.payment_requested": {
        **_MEMBER,
        "payment_id": "pay-0001",
        "purpose": "family_medical",
        "amount": "56.30",
        "beneficiary_id": _CHILD,
        "facility_id": "H32010000001",
    },
    "account.external_fund_payment": {**_MEMBER, "amount": "1500.00", "source": "inpatient"},
    "visit.submitted": {
        **_MEMBER,
        "visit_id": "V20240301-0001",
        "facility_id": "P32010000042",
        "facility_level": 0,
        "facility_grade": None,
        "facility_kind": "retail_pharmacy",
        "designated": True,
        "visit_kind": "chronic",
        "disease_code": "E11.9",
        "inpatient_period": False,
        "out_of_area": "none",
        "prescription": {
            "facility_level": 3,
            "facility_grade": "A",
            "facility_kind": "general_hospital",
        },
        "pay_with_account": True,
        "account_payer_id": None,
        "items": [
            {
                "item_code": "XA10BAM001",
                "category": "drug",
                "amount": "128.40",
                "out_of_catalog_amount": "0",
                "pre_self_pay_amount": "12.84",
            },
            {
                "item_code": "ZZ0001",
                "category": "material",
                "amount": 20,
                "out_of_catalog_amount": 20,
                "pre_self_pay_amount": 0,
            },
        ],
    },
    "visit.reversed": {**_MEMBER, "visit_id": "V20240301-0001", "reason": "entered in error"},
    "period.year_closed": {**_ENVELOPE, "year": 2024},
}


def example(event_type: str) -> dict[str, Any]:
    """A valid event of ``event_type`` as a fresh, freely mutable dict."""
    body = copy.deepcopy(_EXAMPLES[event_type])
    suffix = event_type.replace(".", "-")
    return {"event_id": f"ex-{suffix}", "event_type": event_type, **body}


def example_types() -> list[str]:
    return list(_EXAMPLES)
