"""The input contract as one discriminated union over ``event_type``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union, get_args

from pydantic import Field

from .account import (
    ContributionCorrected,
    ContributionPosted,
    ExternalFundPayment,
    PaymentRequested,
    PensionPaid,
)
from .enrollment import (
    ChronicCapAdjusted,
    ChronicCertified,
    ChronicRevoked,
    ContributionInterrupted,
    ContributionResumed,
    InsuranceTypeChanged,
    MemberEnrolled,
    MemberRetired,
    MemberTerminated,
)
from .envelope import EventBase, MemberEvent
from .family import FamilyAidAuthorized, FamilyAidRevoked
from .period import YearClosed
from .visit import VisitReversed, VisitSubmitted

EVENT_CLASSES: tuple[type[EventBase], ...] = (
    MemberEnrolled,
    MemberRetired,
    InsuranceTypeChanged,
    ContributionInterrupted,
    ContributionResumed,
    MemberTerminated,
    ChronicCertified,
    ChronicCapAdjusted,
    ChronicRevoked,
    FamilyAidAuthorized,
    FamilyAidRevoked,
    ContributionPosted,
    ContributionCorrected,
    PensionPaid,
    PaymentRequested,
    ExternalFundPayment,
    VisitSubmitted,
    VisitReversed,
    YearClosed,
)

if TYPE_CHECKING:
    Event = EventBase  # to the type checker, which cannot read a union built at run time: any event
else:
    Event = Annotated[Union[EVENT_CLASSES], Field(discriminator="event_type")]  # noqa: UP007 - built from the tuple

EVENT_TYPES: dict[str, type[EventBase]] = {
    get_args(cls.model_fields["event_type"].annotation)[0]: cls for cls in EVENT_CLASSES
}
"""``event_type`` wire value -> model class."""
MEMBER_EVENT_TYPES = frozenset(kind for kind, cls in EVENT_TYPES.items() if issubclass(cls, MemberEvent))
"""The event types about one member (a ``MemberEvent``): what an event, a model or the fast decoder's Struct, is
asked instead of its class."""
