"""A registered visit as the contract's `visit.submitted` event: every field from the national messages and the
reference data (docs/national-interface.md lists each source)."""

from __future__ import annotations

from decimal import Decimal

from ledger.codec import dumps

from .counter import CHRONIC, PHARMACY, Counter, Registration
from .errors import Refused
from .reference import Facility


def within(admdvs: str, region: str) -> bool:
    """Whether division `admdvs` lies in the scheme's region: a province (640000) holds its cities and districts
    (6401xx), a city (320100) its districts (3201xx)."""
    prefix = region
    while prefix.endswith("00") and len(prefix) > 2:
        prefix = prefix[:-2]
    return admdvs.startswith(prefix)


def out_of_area(counter: Counter, registration: Registration, facility: Facility) -> str:
    """none at a facility in the member's region; else as filed (2501) for the visit's date, or temporary_unfiled."""
    if within(facility.admdvs, registration.region):
        return "none"
    filing = counter.filed(registration.region, registration.psn_no, registration.begntime.date())
    return filing.kind if filing is not None else "temporary_unfiled"


def visit_event(
    event_id: str,
    registration: Registration,
    facilities: dict[str, Facility],
    counter: Counter,
    pay_with_account: bool,
    account_payer: str | None,
    medfee_sumamt: Decimal,
) -> bytes:
    """The contract line of the visit; `Refused` when it cannot be settled as given."""
    facility = facilities.get(registration.caller)
    if facility is None:
        raise Refused("unknown_facility", f"fixmedins_code: {registration.caller} is not in facilities.csv")
    if not registration.fees:
        raise Refused("invalid_input", f"mdtrt_id: visit {registration.mdtrt_id} has no fee details (2204)")
    total = sum((fee.amount for fee in registration.fees.values()), Decimal("0.00"))
    if medfee_sumamt != total:
        raise Refused(
            "invalid_input", f"input.data.medfee_sumamt: {medfee_sumamt} is not the sum of the fee details, {total}"
        )
    chronic = registration.med_type == CHRONIC
    prescription = None
    if facility.kind == "retail_pharmacy" and registration.prescriber is not None:
        prescriber = facilities.get(registration.prescriber)
        if prescriber is None:
            raise Refused(
                "unknown_facility", f"mdtrtinfo.prsc_fixmedins_code: {registration.prescriber} is not in facilities.csv"
            )
        prescription = {
            "facility_level": prescriber.level,
            "facility_grade": prescriber.grade,
            "facility_kind": prescriber.kind,
        }
    elif registration.med_type == PHARMACY and facility.kind != "retail_pharmacy":
        raise Refused("invalid_input", "mdtrtinfo.med_type: 41 is a purchase at a retail pharmacy")
    event = {
        "event_id": event_id,
        "event_type": "visit.submitted",
        "schema_version": 1,
        "occurred_at": registration.begntime.isoformat(),
        "region": registration.region,
        "member_id": registration.psn_no,
        "visit_id": registration.mdtrt_id,
        "facility_id": facility.code,
        "facility_level": facility.level,
        "facility_grade": facility.grade,
        "facility_kind": facility.kind,
        "designated": facility.designated,
        "visit_kind": "chronic" if chronic else "general",
        "disease_code": registration.dise_codg if chronic else None,
        "inpatient_period": counter.in_stay(registration.region, registration.psn_no, registration.begntime),
        "out_of_area": out_of_area(counter, registration, facility),
        "prescription": prescription,
        "pay_with_account": pay_with_account,
        "account_payer_id": account_payer,
        "items": [
            {
                "item_code": fee.med_list_codg,
                "category": fee.entry.category,
                "amount": str(fee.amount),
                "out_of_catalog_amount": str(fee.out_of_catalog),
                "pre_self_pay_amount": str(fee.pre_self_pay),
            }
            for fee in registration.fees.values()
        ],
    }
    return dumps(event).encode()


def reversal_event(event_id: str, region: str, psn_no: str, mdtrt_id: str, moment: str, reason: str) -> bytes:
    return dumps(
        {
            "event_id": event_id,
            "event_type": "visit.reversed",
            "schema_version": 1,
            "occurred_at": moment,
            "region": region,
            "member_id": psn_no,
            "visit_id": mdtrt_id,
            "reason": reason,
        }
    ).encode()
