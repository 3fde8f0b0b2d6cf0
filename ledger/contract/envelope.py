"""The envelope every event carries, and the model configuration all contract models share."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError, core_schema

from .dates import OccurredAt, business_date
from .fields import EventId, MemberId, wire_enum
from .native import register
from .region import Region


class ContractModel(BaseModel):
    # strict: JSON "1" is not 1 and "yes" is not true; frozen: events are facts, never edited.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)


def _schema_version(value: Any) -> Any:
    # Literal[1] alone would accept True and 1.0, which no producer of version 1 sends.
    if type(value) is not int:
        raise PydanticCustomError("schema_version", "must be the integer 1")
    return value


register(_schema_version, core_schema.int_schema(ge=1, le=1, strict=True))  # strict: no true, no 1.0
SchemaVersion = Annotated[Literal[1], BeforeValidator(_schema_version)]


class EventBase(ContractModel):
    event_id: EventId
    event_type: str
    """Each concrete event narrows this to its Literal; declared here so it serialises second."""
    schema_version: SchemaVersion
    occurred_at: OccurredAt
    region: Annotated[Region, wire_enum(Region)]

    @property
    def business_date(self) -> date:
        """The Asia/Shanghai calendar date of ``occurred_at``: the date policy rules see."""
        return business_date(self.occurred_at)


class MemberEvent(EventBase):
    """An event about one insured person (人员编号 psn_no)."""

    member_id: MemberId
