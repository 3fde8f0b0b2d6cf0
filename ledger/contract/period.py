"""Region-level events: they concern every member of a region, so carry no member_id."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .envelope import EventBase


class YearClosed(EventBase):
    """Closes a policy year for the region and triggers the incentive evaluation."""

    event_type: Literal["period.year_closed"]
    # Bounds only keep the year a real calendar year; the contract names no range.
    year: Annotated[int, Field(ge=1900, le=9999)]

    @model_validator(mode="before")
    @classmethod
    def _no_member(cls, data: Any) -> Any:
        # extra="forbid" would reject it too, but "unknown field" would mislead: it is a known
        # envelope field that this event type must not carry.
        if isinstance(data, dict) and "member_id" in data:
            raise PydanticCustomError(
                "member_id_forbidden",
                "member_id: must be absent on region-level event period.year_closed",
            )
        return data
