"""Family mutual-aid (家庭共济) grants: ``member_id`` is the account holder who lets
``beneficiary_id`` spend from their personal account."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from .envelope import MemberEvent
from .fields import MemberId, wire_enum


class Relation(StrEnum):
    SPOUSE = "spouse"
    PARENT = "parent"
    CHILD = "child"
    SPOUSE_PARENT = "spouse_parent"


class FamilyAidAuthorized(MemberEvent):
    event_type: Literal["family.aid_authorized"]
    beneficiary_id: MemberId
    relation: Annotated[Relation, wire_enum(Relation)]


class FamilyAidRevoked(MemberEvent):
    event_type: Literal["family.aid_revoked"]
    beneficiary_id: MemberId
    relation: Annotated[Relation, wire_enum(Relation)]
