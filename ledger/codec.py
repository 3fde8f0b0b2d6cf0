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


def _texts(values: dict) -> dict[str, str]:
    """A dict of Decimals as their strings, in key order."""
    return {key: str(values[key]) for key in sorted(values)}


def state_to_json(member: MemberState) -> dict[str, Any]:
    """The state as the member_state row keeps it: every part in a fixed order, dates ISO, Decimals as their
    strings. Called for every member a batch touches, so the parts most members leave empty cost no more than a
    test, and no helper is called per value."""
    m = member
    certifications = m.certifications
    counters = m.counters
    contribution_base, monthly_pension, legacy = m.contribution_base, m.monthly_pension, m.legacy_monthly_credit
    retired_on, retirement_pension, terminated_on = m.retired_on, m.retirement_pension, m.terminated_on
    return {
        "region": m.region,
        "member_id": m.member_id,
        "birth_date": m.birth_date.isoformat(),
        "enrolled_on": m.enrolled_on.isoformat(),
        "statuses": [[s.since.isoformat(), s.insurance_type, s.person_type] for s in m.statuses],
        "contribution_base": None if contribution_base is None else str(contribution_base),
        "monthly_pension": None if monthly_pension is None else str(monthly_pension),
        "legacy_monthly_credit": None if legacy is None else str(legacy),
        "designated_facilities": sorted(m.designated_facilities) if m.designated_facilities else [],
        "remote_pilot": m.remote_pilot,
        "retired_on": None if retired_on is None else str(retired_on),
        "retirement_pension": None if retirement_pension is None else str(retirement_pension),
        "segment_starts": [d.isoformat() for d in m.segment_starts] if m.segment_starts else [],
        "terminated_on": None if terminated_on is None else str(terminated_on),
        "termination_reason": m.termination_reason,
        "earlier_periods": [[start.isoformat(), end.isoformat()] for start, end in m.earlier_periods]
        if m.earlier_periods
        else [],
        "certifications": {
            code: [
                [c.since.isoformat(), None if c.annual_cap is None else str(c.annual_cap), c.kind]
                for c in certifications[code]
            ]
            for code in sorted(certifications)
        }
        if certifications
        else {},
        "family_grants": dict(sorted(m.family_grants.items())) if m.family_grants else {},
        "balance": str(m.balance),
        "account_closed": m.account_closed,
        "bonus_points": str(m.bonus_points),
        "health_streak": m.health_streak,
        "year_balances": _texts(m.year_balances) if m.year_balances else {},
        "incentives": dict(sorted(m.incentives.items())) if m.incentives else {},
        "counters": {period: _texts(counters[period]) for period in sorted(counters)} if counters else {},
        "contributions": _texts(m.contributions) if m.contributions else {},
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


def _decimals(values: dict[str, str]) -> dict[str, Decimal]:
    return {key: Decimal(value) for key, value in values.items()}


def state_from_json(data: dict[str, Any]) -> MemberState:
    """The inverse of `state_to_json`. Called for every member a batch loads: the parts most members leave empty
    cost no more than a test, and no helper is called per value."""
    day = date.fromisoformat
    get = data.get
    certifications = data["certifications"]
    counters = data["counters"]
    earlier = get("earlier_periods")
    year_balances = get("year_balances")
    incentives = get("incentives")
    contributions = get("contributions")
    segment_starts = data["segment_starts"]
    contribution_base, monthly_pension, legacy = (
        data["contribution_base"],
        data["monthly_pension"],
        data["legacy_monthly_credit"],
    )
    retired_on, retirement_pension, terminated_on = (
        data["retired_on"],
        data["retirement_pension"],
        data["terminated_on"],
    )
    return MemberState(
        region=data["region"],
        member_id=data["member_id"],
        birth_date=day(data["birth_date"]),
        enrolled_on=day(data["enrolled_on"]),
        statuses=[Status(day(since), ins, person) for since, ins, person in data["statuses"]],
        contribution_base=None if contribution_base is None else Decimal(contribution_base),
        monthly_pension=None if monthly_pension is None else Decimal(monthly_pension),
        legacy_monthly_credit=None if legacy is None else Decimal(legacy),
        designated_facilities=frozenset(data["designated_facilities"]),
        remote_pilot=data["remote_pilot"],
        retired_on=None if retired_on is None else day(retired_on),
        retirement_pension=None if retirement_pension is None else Decimal(retirement_pension),
        segment_starts=[day(d) for d in segment_starts] if segment_starts else [],
        terminated_on=None if terminated_on is None else day(terminated_on),
        termination_reason=data["termination_reason"],
        earlier_periods=[(day(start), day(end)) for start, end in earlier] if earlier else [],
        certifications={
            code: [
                Certification(day(since), code, None if cap is None else Decimal(cap), kind)
                for since, cap, kind in steps
            ]
            for code, steps in certifications.items()
        }
        if certifications
        else {},
        family_grants=dict(data["family_grants"]),
        balance=Decimal(data["balance"]),
        account_closed=data["account_closed"],
        bonus_points=Decimal(data["bonus_points"]),
        health_streak=data["health_streak"],
        year_balances=_decimals(year_balances) if year_balances else {},
        incentives=dict(incentives) if incentives else {},
        counters={period: _decimals(values) for period, values in counters.items()} if counters else {},
        contributions=_decimals(contributions) if contributions else {},
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
