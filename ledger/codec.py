"""Engine state and records to and from the JSON kept in the database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from policies.member import Certification, MemberState, Status
from policies.outputs import Settlement

from .records import SettlementRecord


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """JSON as medledger writes it everywhere (output lines, the outbox, the state kept): compact, non-ASCII as it
    is, Decimals as their strings. The bytes `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` gives,
    made several times faster."""
    return orjson.dumps(value, default=_plain, option=orjson.OPT_NON_STR_KEYS).decode()


def encoded(value: Any) -> bytes:
    """`dumps(value)` as one line of UTF-8, its end included: what `settle` prints for a record."""
    return orjson.dumps(value, default=_plain, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def state_to_json(member: MemberState) -> dict[str, Any]:
    return {
        "region": member.region,
        "member_id": member.member_id,
        "birth_date": member.birth_date.isoformat(),
        "enrolled_on": member.enrolled_on.isoformat(),
        "statuses": [[s.since.isoformat(), s.insurance_type, s.person_type] for s in member.statuses],
        "contribution_base": _s(member.contribution_base),
        "monthly_pension": _s(member.monthly_pension),
        "legacy_monthly_credit": _s(member.legacy_monthly_credit),
        "designated_facilities": sorted(member.designated_facilities),
        "remote_pilot": member.remote_pilot,
        "retired_on": _s(member.retired_on),
        "retirement_pension": _s(member.retirement_pension),
        "segment_starts": [d.isoformat() for d in member.segment_starts],
        "terminated_on": _s(member.terminated_on),
        "termination_reason": member.termination_reason,
        "earlier_periods": [[start.isoformat(), end.isoformat()] for start, end in member.earlier_periods],
        "certifications": {
            code: [[c.since.isoformat(), _s(c.annual_cap), c.kind] for c in steps]
            for code, steps in sorted(member.certifications.items())
        },
        "family_grants": dict(sorted(member.family_grants.items())),
        "balance": str(member.balance),
        "account_closed": member.account_closed,
        "bonus_points": str(member.bonus_points),
        "health_streak": member.health_streak,
        "year_balances": {year: str(value) for year, value in sorted(member.year_balances.items())},
        "incentives": dict(sorted(member.incentives.items())),
        "counters": {
            period: {name: str(value) for name, value in sorted(values.items())}
            for period, values in sorted(member.counters.items())
        },
        "contributions": {month: str(value) for month, value in sorted(member.contributions.items())},
    }


# Every key `state_to_json` writes. A member_state row lacking one was written by an earlier release, before the
# state kept it (`contributions`: the months credited, which enforce one contribution per member and month);
# read with a default it would settle the member otherwise than a replay does, so the service does not settle on
# such rows (`ledger.db.projection_store.earlier_shapes`): the projections are rebuilt from the ledger first.
STATE_KEYS = (
    "region",
    "member_id",
    "birth_date",
    "enrolled_on",
    "statuses",
    "contribution_base",
    "monthly_pension",
    "legacy_monthly_credit",
    "designated_facilities",
    "remote_pilot",
    "retired_on",
    "retirement_pension",
    "segment_starts",
    "terminated_on",
    "termination_reason",
    "earlier_periods",
    "certifications",
    "family_grants",
    "balance",
    "account_closed",
    "bonus_points",
    "health_streak",
    "year_balances",
    "incentives",
    "counters",
    "contributions",
)


def state_from_json(data: dict[str, Any]) -> MemberState:
    return MemberState(
        region=data["region"],
        member_id=data["member_id"],
        birth_date=date.fromisoformat(data["birth_date"]),
        enrolled_on=date.fromisoformat(data["enrolled_on"]),
        statuses=[Status(date.fromisoformat(since), ins, person) for since, ins, person in data["statuses"]],
        contribution_base=_d(data["contribution_base"]),
        monthly_pension=_d(data["monthly_pension"]),
        legacy_monthly_credit=_d(data["legacy_monthly_credit"]),
        designated_facilities=frozenset(data["designated_facilities"]),
        remote_pilot=data["remote_pilot"],
        retired_on=_day(data["retired_on"]),
        retirement_pension=_d(data["retirement_pension"]),
        segment_starts=[date.fromisoformat(d) for d in data["segment_starts"]],
        terminated_on=_day(data["terminated_on"]),
        termination_reason=data["termination_reason"],
        earlier_periods=[
            (date.fromisoformat(start), date.fromisoformat(end)) for start, end in data.get("earlier_periods", [])
        ],
        certifications={
            code: [Certification(date.fromisoformat(since), code, _d(cap), kind) for since, cap, kind in steps]
            for code, steps in data["certifications"].items()
        },
        family_grants=dict(data["family_grants"]),
        balance=Decimal(data["balance"]),
        account_closed=data["account_closed"],
        bonus_points=Decimal(data["bonus_points"]),
        health_streak=data["health_streak"],
        year_balances={year: Decimal(value) for year, value in data.get("year_balances", {}).items()},
        incentives=dict(data.get("incentives", {})),
        counters={
            period: {name: Decimal(value) for name, value in values.items()}
            for period, values in data["counters"].items()
        },
        contributions={month: Decimal(value) for month, value in data.get("contributions", {}).items()},
    )


def deltas_to_json(settlement: Settlement) -> list[list[str]]:
    return [[period, name, str(amount)] for period, name, amount in settlement.deltas]


def settlement_from_row(record: dict[str, Any], deltas: list[list[str]], event_id: str) -> Settlement:
    """Rebuild the engine's settlement from its published record, as a later reversal needs it."""
    # A record stored before a field was added validates with that field's default.
    known = {name: record[name] for name in SettlementRecord.model_fields if name in record}
    model = SettlementRecord.model_validate(known)
    fields = {name: getattr(model, name) for name in SettlementRecord.model_fields}
    return Settlement(
        **fields,
        event_id=event_id,
        deltas=tuple((period, name, Decimal(amount)) for period, name, amount in deltas),
    )
