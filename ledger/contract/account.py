"""Personal-account events: money in (contributions, retiree credits) and out (payments)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic.json_schema import JsonValue
from pydantic_core import PydanticCustomError

from .dates import Month, month_start
from .envelope import MemberEvent
from .fields import FreeText, Identifier, MemberId, wire_enum
from .money import Money


class Purpose(StrEnum):
    OWN_MEDICAL = "own_medical"
    FAMILY_MEDICAL = "family_medical"
    FAMILY_RESIDENT_PREMIUM = "family_resident_premium"
    LTC_PREMIUM = "ltc_premium"
    SUPPLEMENTARY_INSURANCE = "supplementary_insurance"
    LARGE_AMOUNT_PREMIUM = "large_amount_premium"
    HEALTH_CHECKUP = "health_checkup"
    VACCINE = "vaccine"
    FAMILY_DOCTOR_FEE = "family_doctor_fee"
    PUBLIC_HEALTH = "public_health"
    FITNESS = "fitness"


FAMILY_PURPOSES = frozenset({Purpose.FAMILY_MEDICAL, Purpose.FAMILY_RESIDENT_PREMIUM})
"""Purposes that spend on someone else, so the event must say on whom."""


_FAMILY_PURPOSE_VALUES: list[JsonValue] = [value for value in sorted(p.value for p in FAMILY_PURPOSES)]


class ExternalSource(StrEnum):
    INPATIENT = "inpatient"
    MANUAL_REIMBURSEMENT = "manual_reimbursement"


class Contribution(MemberEvent):
    """A month's contribution as the contribution system reports it."""

    month: Month
    contribution_base: Money
    individual_amount: Money
    employer_amount: Money

    @property
    def month_start(self) -> date:
        return month_start(self.month)


class ContributionPosted(Contribution):
    event_type: Literal["account.contribution_posted"]


class ContributionCorrected(Contribution):
    """A posted month's contribution corrected (each member and month is posted once): the account moves by the
    difference between what the corrected contribution credits and what the posted one credited."""

    event_type: Literal["account.contribution_corrected"]
    reason: FreeText


class PensionPaid(MemberEvent):
    event_type: Literal["account.pension_paid"]
    month: Month
    monthly_pension: Money

    @property
    def month_start(self) -> date:
        return month_start(self.month)


class PaymentRequested(MemberEvent):
    event_type: Literal["account.payment_requested"]
    payment_id: Identifier
    purpose: Annotated[Purpose, wire_enum(Purpose)]
    amount: Money
    # validate_default so the "required for family purposes" check also runs when it is absent.
    beneficiary_id: Annotated[MemberId | None, Field(validate_default=True)] = None
    facility_id: Identifier | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "properties": {"purpose": {"enum": _FAMILY_PURPOSE_VALUES}},
                "required": ["purpose"],
            },
            "then": {
                "required": ["beneficiary_id"],
                "properties": {"beneficiary_id": {"type": "string"}},
            },
        }
    )

    @field_validator("beneficiary_id")
    @classmethod
    def _beneficiary_for_family(cls, value: str | None, info: ValidationInfo) -> str | None:
        purpose = info.data.get("purpose")  # absent when purpose itself was invalid
        if value is None and purpose in FAMILY_PURPOSES:
            raise PydanticCustomError(
                "required_for_purpose",
                "required when purpose is '{purpose}'",
                {"purpose": str(purpose)},
            )
        return value


class ExternalFundPayment(MemberEvent):
    """Paid by a fund outside the personal account; breaks the Nanjing incentive streak."""

    event_type: Literal["account.external_fund_payment"]
    amount: Money
    source: Annotated[ExternalSource, wire_enum(ExternalSource)]
