"""The input event contract (v1): strict models, decoding, and the published JSON Schema."""

from .account import (
    FAMILY_PURPOSES,
    ContributionCorrected,
    ContributionPosted,
    ExternalFundPayment,
    ExternalSource,
    PaymentRequested,
    PensionPaid,
    Purpose,
)
from .dates import POLICY_TZ
from .decode import InvalidEvent, as_model, decode_event, decode_json, decode_line, same_values
from .enrollment import (
    ChronicCapAdjusted,
    ChronicCertified,
    ChronicKind,
    ChronicRevoked,
    ContributionInterrupted,
    ContributionResumed,
    InsuranceType,
    InsuranceTypeChanged,
    MemberEnrolled,
    MemberRetired,
    MemberTerminated,
    PersonType,
    TerminationReason,
)
from .envelope import EventBase, MemberEvent
from .event import EVENT_CLASSES, EVENT_TYPES, Event
from .family import FamilyAidAuthorized, FamilyAidRevoked, Relation
from .money import Money, parse_money
from .period import YearClosed
from .region import Region
from .schema import contract_json_schema
from .visit import (
    FacilityGrade,
    FacilityKind,
    ItemCategory,
    OutOfArea,
    Prescription,
    VisitItem,
    VisitKind,
    VisitReversed,
    VisitSubmitted,
)

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "FAMILY_PURPOSES",
    "POLICY_TZ",
    "ChronicCapAdjusted",
    "ChronicCertified",
    "ChronicKind",
    "ChronicRevoked",
    "ContributionCorrected",
    "ContributionInterrupted",
    "ContributionPosted",
    "ContributionResumed",
    "Event",
    "EventBase",
    "ExternalFundPayment",
    "ExternalSource",
    "FacilityGrade",
    "FacilityKind",
    "FamilyAidAuthorized",
    "FamilyAidRevoked",
    "InsuranceType",
    "InsuranceTypeChanged",
    "InvalidEvent",
    "ItemCategory",
    "MemberEnrolled",
    "MemberEvent",
    "MemberRetired",
    "MemberTerminated",
    "Money",
    "OutOfArea",
    "PaymentRequested",
    "PensionPaid",
    "PersonType",
    "Prescription",
    "Purpose",
    "Region",
    "Relation",
    "TerminationReason",
    "VisitItem",
    "VisitKind",
    "VisitReversed",
    "VisitSubmitted",
    "YearClosed",
    "contract_json_schema",
    "as_model",
    "decode_event",
    "decode_json",
    "decode_line",
    "same_values",
    "parse_money",
]
