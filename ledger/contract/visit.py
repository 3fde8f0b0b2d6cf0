"""Visit events: an outpatient visit or pharmacy purchase to settle, and its reversal."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .envelope import ContractModel, MemberEvent
from .fields import Code, FreeText, Identifier, MemberId, wire_enum, wire_list
from .money import Money


class FacilityGrade(StrEnum):
    A = "A"
    B = "B"


class FacilityKind(StrEnum):
    GENERAL_HOSPITAL = "general_hospital"
    TCM_HOSPITAL = "tcm_hospital"
    COMMUNITY_HEALTH_CENTER = "community_health_center"
    TOWNSHIP_HEALTH_CENTER = "township_health_center"
    VILLAGE_CLINIC = "village_clinic"
    RETAIL_PHARMACY = "retail_pharmacy"
    INTERNET_HOSPITAL = "internet_hospital"


class VisitKind(StrEnum):
    GENERAL = "general"
    CHRONIC = "chronic"


class OutOfArea(StrEnum):
    NONE = "none"
    LONG_TERM = "long_term"
    TEMPORARY_FILED = "temporary_filed"
    TEMPORARY_UNFILED = "temporary_unfiled"


class ItemCategory(StrEnum):
    DRUG = "drug"
    EXAM = "exam"
    TREATMENT = "treatment"
    MATERIAL = "material"
    CONSULTATION_FEE = "consultation_fee"
    GENERAL_DIAGNOSIS_FEE = "general_diagnosis_fee"
    NUCLEIC_ACID_TEST = "nucleic_acid_test"
    HEALTH_CHECKUP = "health_checkup"
    PUBLIC_HEALTH = "public_health"
    OTHER = "other"


FacilityLevel = Annotated[int, Field(ge=0, le=3)]
"""0 = below tier 1 (village level), then hospital tiers 1-3."""
FacilityGradeField = Annotated[FacilityGrade, wire_enum(FacilityGrade)] | None
FacilityKindField = Annotated[FacilityKind, wire_enum(FacilityKind)]


class Prescription(ContractModel):
    """The prescribing facility behind a retail-pharmacy purchase."""

    facility_level: FacilityLevel
    facility_grade: FacilityGradeField = None
    facility_kind: FacilityKindField


class VisitItem(ContractModel):
    item_code: Code
    category: Annotated[ItemCategory, wire_enum(ItemCategory)]
    amount: Money
    out_of_catalog_amount: Money
    """Outside the catalogue (全自费): paid entirely by the member."""
    pre_self_pay_amount: Money
    """Catalogue item's self-pay share (先行自付) before policy ratios apply."""

    @model_validator(mode="after")
    def _parts_within_amount(self) -> VisitItem:
        # Both parts are carved out of the same line amount; more than that is a producer error.
        parts = self.out_of_catalog_amount + self.pre_self_pay_amount
        if parts > self.amount:
            raise PydanticCustomError(
                "item_parts_exceed_amount",
                "out_of_catalog_amount + pre_self_pay_amount ({parts}) exceeds amount ({amount})",
                {"parts": str(parts), "amount": str(self.amount)},
            )
        return self


class VisitSubmitted(MemberEvent):
    event_type: Literal["visit.submitted"]
    visit_id: Identifier
    facility_id: Identifier
    facility_level: FacilityLevel
    facility_grade: FacilityGradeField = None
    facility_kind: FacilityKindField
    designated: bool
    visit_kind: Annotated[VisitKind, wire_enum(VisitKind)]
    # validate_default so the chronic rule also fires when the field is left out.
    disease_code: Annotated[Code | None, Field(validate_default=True)] = None
    inpatient_period: bool
    out_of_area: Annotated[OutOfArea, wire_enum(OutOfArea)]
    prescription: Prescription | None = None
    pay_with_account: bool
    account_payer_id: MemberId | None = None
    """The family grantor whose account pays; null means the member's own account."""
    items: Annotated[tuple[VisitItem, ...], Field(min_length=1), wire_list(min_items=1)]

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"visit_kind": {"const": "chronic"}}, "required": ["visit_kind"]},
            "then": {
                "required": ["disease_code"],
                "properties": {"disease_code": {"type": "string"}},
            },
        }
    )

    @field_validator("disease_code")
    @classmethod
    def _disease_for_chronic(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("visit_kind") is VisitKind.CHRONIC:
            raise PydanticCustomError("required_for_chronic", "required when visit_kind is 'chronic'")
        return value


class VisitReversed(MemberEvent):
    event_type: Literal["visit.reversed"]
    visit_id: Identifier
    reason: FreeText
