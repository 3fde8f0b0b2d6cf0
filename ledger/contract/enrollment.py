"""Enrollment events: who is insured, how, and with which chronic-disease certifications."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from .dates import Date
from .envelope import MemberEvent
from .fields import Code, Identifier, wire_enum, wire_list
from .money import Money


class InsuranceType(StrEnum):
    EMPLOYEE = "employee"
    RESIDENT = "resident"


class PersonType(StrEnum):
    IN_SERVICE = "in_service"
    FLEXIBLE = "flexible"
    RETIRED = "retired"
    VETERAN_PRE1949 = "veteran_pre1949"
    RESIDENT_TIER1 = "resident_tier1"
    RESIDENT_TIER2 = "resident_tier2"
    RESIDENT_MINOR = "resident_minor"


class TerminationReason(StrEnum):
    DEATH = "death"
    EMIGRATION = "emigration"
    TRANSFER_OUT = "transfer_out"


class ChronicKind(StrEnum):
    COMMON = "common"
    SPECIAL = "special"


InsuranceTypeField = Annotated[InsuranceType, wire_enum(InsuranceType)]
PersonTypeField = Annotated[PersonType, wire_enum(PersonType)]


class MemberEnrolled(MemberEvent):
    event_type: Literal["member.enrolled"]
    insurance_type: InsuranceTypeField
    person_type: PersonTypeField
    birth_date: Date
    effective_date: Date
    contribution_base: Money | None = None
    monthly_pension: Money | None = None
    legacy_monthly_credit: Money | None = None
    """Nanjing: the member's December 2022 monthly account credit."""
    designated_facilities: Annotated[tuple[Identifier, ...] | None, wire_list(nullable=True)] = None
    """Weihai: facility ids the member is registered with."""
    remote_pilot: bool | None = None
    """Ningxia remote-settlement pilot; null (or absent) means the producer did not say."""


class MemberRetired(MemberEvent):
    event_type: Literal["member.retired"]
    effective_date: Date
    monthly_pension: Money


class InsuranceTypeChanged(MemberEvent):
    event_type: Literal["member.insurance_type_changed"]
    insurance_type: InsuranceTypeField
    person_type: PersonTypeField
    effective_date: Date


class ContributionInterrupted(MemberEvent):
    event_type: Literal["member.contribution_interrupted"]
    effective_date: Date


class ContributionResumed(MemberEvent):
    event_type: Literal["member.contribution_resumed"]
    effective_date: Date


class MemberTerminated(MemberEvent):
    event_type: Literal["member.terminated"]
    reason: Annotated[TerminationReason, wire_enum(TerminationReason)]
    effective_date: Date


class ChronicCertified(MemberEvent):
    event_type: Literal["member.chronic_certified"]
    disease_code: Code
    annual_cap: Money
    kind: Annotated[ChronicKind, wire_enum(ChronicKind)] | None = None
    """Weihai residents only; null (or absent) elsewhere."""
    effective_date: Date


class ChronicCapAdjusted(MemberEvent):
    event_type: Literal["member.chronic_cap_adjusted"]
    disease_code: Code
    annual_cap: Money
    effective_date: Date


class ChronicRevoked(MemberEvent):
    event_type: Literal["member.chronic_revoked"]
    disease_code: Code
    effective_date: Date
