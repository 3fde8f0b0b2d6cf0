"""The output contract: settlements (with the national platform's 2207 setlinfo names), account movements,
incentive evaluations and rejections, as published to files, the settlement topic and reporting consumers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from policies.outputs import (
    AFTER_AMOUNTS,
    PAYMENT_AMOUNTS,
    VISIT_AMOUNTS,
    IncentiveEvaluation,
    Movement,
    Settlement,
)

FEN = Decimal("0.01")

MONEY_FIELDS = (*VISIT_AMOUNTS, *PAYMENT_AMOUNTS, *AFTER_AMOUNTS)


def money_text(value: Decimal) -> str:
    """Two decimals, and a zero is "0.00" even when it is a negated zero."""
    return str(value.quantize(FEN)) if value else "0.00"


def _fen_exact(name: str, value: Decimal | None) -> None:
    if value is not None and value != value.quantize(FEN):
        raise ValueError(f"{name}: {value} is not a whole number of fen")


class SettlementRecord(BaseModel):
    """One settled or reversed visit; a reversal carries negated amounts and `reverses` (national 2208)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    settlement_id: str = Field(alias="setl_id")
    visit_id: str = Field(alias="mdtrt_id")
    member_id: str = Field(alias="psn_no")
    ledger_seq: int
    region: str
    visit_date: date
    facility_level: int | None = None
    policy_id: str
    insutype: str
    psn_type: str
    med_type: str
    fund_pay_type: str
    total_amount: Decimal = Field(alias="medfee_sumamt")
    out_of_catalog_amount: Decimal = Field(alias="fulamt_ownpay_amt")
    pre_self_pay_amount: Decimal = Field(alias="preselfpay_amt")
    in_policy_amount: Decimal = Field(alias="inscp_scp_amt")
    deductible_paid: Decimal = Field(alias="act_pay_dedc")
    fund_paid: Decimal = Field(alias="hifp_pay")
    fund_pool: str
    fund_ratio: Decimal = Field(alias="pool_prop_selfpay")
    copay_amount: Decimal
    over_limit_amount: Decimal = Field(alias="overlmt_selfpay")
    member_share: Decimal = Field(alias="psn_part_amt")
    account_paid: Decimal = Field(alias="acct_pay")
    family_account_paid: Decimal = Field(alias="acct_mulaid_pay")
    cash_paid: Decimal = Field(alias="psn_cash_pay")
    account_balance_after: Decimal | None = Field(alias="balc")
    limit_remaining: Decimal | None = Field(alias="crt_payb_lmt_amt")
    payer_id: str | None
    explanation: tuple[str, ...]
    reverses: str | None = None

    @model_validator(mode="after")
    def _identities(self) -> SettlementRecord:
        for name in MONEY_FIELDS:
            _fen_exact(name, getattr(self, name))
        if self.total_amount != self.fund_paid + self.member_share:
            raise ValueError(
                f"total_amount {self.total_amount} != fund_paid {self.fund_paid} + member_share {self.member_share}"
            )
        if self.member_share != self.account_paid + self.cash_paid:
            raise ValueError(
                f"member_share {self.member_share} != account_paid {self.account_paid} + cash_paid {self.cash_paid}"
            )
        return self

    @field_serializer(*MONEY_FIELDS)
    def _money(self, value: Decimal | None) -> str | None:
        return None if value is None else money_text(value)

    @field_serializer("fund_ratio")
    def _ratio(self, value: Decimal) -> str:
        return str(value.quantize(Decimal("0.0001")))

    @classmethod
    def of(cls, settlement: Settlement) -> SettlementRecord:
        values = {name: getattr(settlement, name) for name in cls.model_fields}
        return cls.model_validate(values)

    def wire(self) -> dict[str, Any]:
        """Our names, then every national alias beside them."""
        ours = self.model_dump(mode="json")
        for name, alias in NATIONAL_ALIASES:
            ours[alias] = ours[name]
        return ours


NATIONAL_ALIASES = tuple((name, field.alias) for name, field in SettlementRecord.model_fields.items() if field.alias)


class MovementRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    movement_id: str
    event_id: str
    member_id: str
    region: str
    kind: str
    purpose: str
    amount: Decimal
    balance_after: Decimal
    beneficiary_id: str | None
    policy_id: str
    explanation: tuple[str, ...]

    @model_validator(mode="after")
    def _positive(self) -> MovementRecord:
        if self.amount <= 0:
            raise ValueError(f"amount {self.amount} must be positive")
        if self.balance_after < 0:
            raise ValueError(f"balance_after {self.balance_after} is negative")
        _fen_exact("amount", self.amount)
        return self

    @field_serializer("amount", "balance_after")
    def _money(self, value: Decimal) -> str:
        return money_text(value)

    @classmethod
    def of(cls, movement: Movement) -> MovementRecord:
        return cls.model_validate({name: getattr(movement, name) for name in cls.model_fields})

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def incentive_wire(evaluation: IncentiveEvaluation) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, Decimal) else value

    return {
        "incentive": evaluation.incentive,
        "event_id": evaluation.event_id,
        "member_id": evaluation.member_id,
        "region": evaluation.region,
        "year": evaluation.year,
        "before": plain(evaluation.before),
        "after": plain(evaluation.after),
        "policy_id": evaluation.policy_id,
        "explanation": list(evaluation.explanation),
    }


def shown_payload(text: str) -> Any:
    """A rejection's payload as published: the JSON received (decimals kept exact), or the text when it is not
    JSON at all, or when it is JSON whose strings hold a lone surrogate (an escape such as \\ud800 alone), which
    no UTF-8 output can carry."""
    try:
        shown = json.loads(text, parse_float=Decimal)
    except ValueError:
        return text
    if _SURROGATE_ESCAPE.search(text) and _has_surrogate(shown):
        return text
    return shown


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return any(_has_surrogate(key) or _has_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


def rejection_wire(rejected: str | int, reason: str, detail: str, payload: Any) -> dict[str, Any]:
    return {"rejected": rejected, "reason": reason, "detail": detail, "payload": payload}


_RATIO = Decimal("0.0001")


def _settlement_builder(aliases: bool) -> Callable[[Settlement], dict[str, Any]]:
    """`settlement_record` (`aliases` False) or `settlement_wire`, written out once from `SettlementRecord`'s fields
    and national aliases: each value read and converted once, each amount quantized once (for the whole-fen check
    and its text alike), the record built in one go, with its aliases beside our names for the wire."""
    body = ["def settlement(s):"]
    for name in SettlementRecord.model_fields:
        if name in MONEY_FIELDS:
            body += [
                f"    v = s.{name}",
                "    if v is None:",
                f"        {name} = None",
                "    elif not v:",  # zero, however written, is a whole number of fen: most amounts of a visit
                f"        {name} = '0.00'",
                "    else:",
                # Written with two decimals and no exponent, the amount is a whole number of fen and that is its
                # text (what quantizing gives): nearly every amount, made of amounts in fen. Otherwise quantized.
                "        t = str(v)",
                "        if t[-3:-2] != '.' or 'E' in t:",
                "            q = v.quantize(FEN)",
                "            if q != v:",
                f"                raise ValueError(f'{name}: {{v}} is not a whole number of fen')",
                "            t = str(q)",
                f"        {name} = t",
            ]
        elif name == "fund_ratio":
            body.append(f"    {name} = str(s.fund_ratio.quantize(_RATIO))")
        elif name == "visit_date":
            body.append(f"    {name} = s.visit_date.isoformat()")
        elif name == "explanation":
            body.append(f"    {name} = list(s.explanation)")
        else:
            body.append(f"    {name} = s.{name}")
    body += ["    _identities(s)", "    return {"]
    body += [f"        {name!r}: {name}," for name in SettlementRecord.model_fields]
    if aliases:
        body += [f"        {alias!r}: {name}," for name, alias in NATIONAL_ALIASES]
    body.append("    }")
    scope: dict[str, Any] = {"FEN": FEN, "_RATIO": _RATIO, "_identities": _identities}
    exec("\n".join(body), scope)  # noqa: S102 - source generated above from the record's own fields
    settlement: Callable[[Settlement], dict[str, Any]] = scope["settlement"]  # defined by the source above
    return settlement


def national(record: dict[str, Any]) -> dict[str, Any]:
    """The national aliases of a settlement record in our names (`settlement_record`), with their values."""
    return {alias: record[name] for name, alias in NATIONAL_ALIASES}


def with_aliases(record: dict[str, Any]) -> dict[str, Any]:
    """A settlement record as it leaves medledger: our names, then every national alias beside them. The ledger
    keeps a settlement in our names alone (a record kept before that has its aliases already: they are the same)."""
    return record | national(record)


def _identities(settlement: Settlement) -> None:
    if settlement.total_amount != settlement.fund_paid + settlement.member_share:
        raise ValueError(
            f"total_amount {settlement.total_amount} != fund_paid {settlement.fund_paid} + "
            f"member_share {settlement.member_share}"
        )
    if settlement.member_share != settlement.account_paid + settlement.cash_paid:
        raise ValueError(
            f"member_share {settlement.member_share} != account_paid {settlement.account_paid} + "
            f"cash_paid {settlement.cash_paid}"
        )


settlement_wire = _settlement_builder(aliases=True)
settlement_wire.__doc__ = """The published settlement, built straight from the engine's record: the same dict as
`SettlementRecord.of(settlement).wire()`, with the same checks (whole fen, then the identities), at a fraction of
the cost."""
settlement_record = _settlement_builder(aliases=False)
settlement_record.__doc__ = """The settlement as the ledger keeps it: `settlement_wire` without the national aliases,
which are added where a record leaves medledger (`with_aliases`)."""


MOVEMENT_FIELDS = tuple(MovementRecord.model_fields)  # a published movement's fields, in their order


def movement_wire(movement: Movement) -> dict[str, Any]:
    """The same dict as `MovementRecord.of(movement).wire()`, with the same checks."""
    amount, balance = movement.amount, movement.balance_after
    if amount <= 0:
        raise ValueError(f"amount {amount} must be positive")
    if balance < 0:
        raise ValueError(f"balance_after {balance} is negative")
    _fen_exact("amount", amount)
    record: dict[str, Any] = {name: getattr(movement, name) for name in MOVEMENT_FIELDS}
    record["amount"], record["balance_after"] = money_text(amount), money_text(balance)
    record["explanation"] = list(movement.explanation)
    return record


def wire(output: Settlement | Movement | IncentiveEvaluation) -> dict[str, Any]:
    if isinstance(output, Settlement):
        return settlement_wire(output)
    if isinstance(output, Movement):
        return movement_wire(output)
    if isinstance(output, IncentiveEvaluation):
        return incentive_wire(output)
    raise TypeError(f"no wire form for {type(output).__name__}")
