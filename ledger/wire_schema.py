"""The output records exactly as they travel (the settlement and rejection topics, `settle`'s lines), as models
whose one use is their JSON Schema: the AsyncAPI document describes the topics with them, and the tests check
every record the examples produce against that document.

A settlement carries each field under its own name and again under its national 2207 name; money is a string
with two decimals (`-` on a reversal), the fund ratio one with four. The one exception is a record too large for
the broker (`consumers.relay.publishable`): a rejection's payload is then replaced by its size and SHA-256, and any
other record is cut down to its identifying fields and `"truncated": true`; the ledger keeps it whole.
"""

from __future__ import annotations

from collections.abc import Collection
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model

from .records import MONEY_FIELDS, NATIONAL_ALIASES, MovementRecord, SettlementRecord

Money = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$", examples=["128.50"])]  # negated on a reversal
Amount = Annotated[str, Field(pattern=r"^\d+\.\d{2}$", examples=["128.50"])]  # never negative
Ratio = Annotated[str, Field(pattern=r"^\d+\.\d{4}$", examples=["0.7000"])]
Points = Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?$")]
CLOSED = ConfigDict(extra="forbid")


def _nullable(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType) and NoneType in get_args(annotation)


def _wire_type(name: str, annotation: Any, money: Collection[str] = MONEY_FIELDS, as_money: Any = Money) -> Any:
    if name in money:
        kind = as_money
    elif name == "fund_ratio":
        kind = Ratio
    elif name == "explanation":
        kind = list[str]
    else:
        return annotation
    return kind | None if _nullable(annotation) else kind


def _settlement_fields() -> dict[str, Any]:
    """Every field is on every record (none is left out for being empty): all are required."""
    kinds = {name: _wire_type(name, field.annotation) for name, field in SettlementRecord.model_fields.items()}
    fields: dict[str, Any] = {name: (kind, ...) for name, kind in kinds.items()}
    for name, alias in NATIONAL_ALIASES:
        fields[alias] = (kinds[name], Field(description=f"`{name}` under its national 2207 name"))
    return fields


def _movement_fields() -> dict[str, Any]:
    return {
        name: (_wire_type(name, field.annotation, money=("amount", "balance_after"), as_money=Amount), ...)
        for name, field in MovementRecord.model_fields.items()
    }


SettlementMessage = create_model(
    "SettlementMessage",
    __config__=CLOSED,
    __doc__="A settled visit, or with `reverses` the reversal of one (national 2208), which negates the amounts.",
    **_settlement_fields(),
)

MovementMessage = create_model(
    "MovementMessage",
    __config__=CLOSED,
    __doc__="A credit, debit or payout of a personal account; `amount` is positive.",
    **_movement_fields(),
)


class IncentiveMessage(BaseModel):
    """A member's incentive evaluated at a year close: Weihai's bonus ratio points (decimal text), Nanjing's
    health streak (whole years)."""

    model_config = CLOSED

    incentive: str
    event_id: str
    member_id: str
    region: str
    year: int
    before: Points | int
    after: Points | int
    policy_id: str
    explanation: list[str]


class RejectionMessage(BaseModel):
    """A refused event: its event id (or the line number / topic-partition-offset of unreadable input), a stable
    reason code, a sentence naming the field or rule, and the payload as received (the JSON, or its text when it
    is not JSON; a huge one is replaced by its size and SHA-256, and kept whole in ledger_rejections)."""

    model_config = CLOSED

    rejected: str | int
    reason: str
    detail: str
    payload: Any
