"""Engine state and records to and from the JSON kept in the database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from operator import attrgetter
from typing import Any

import msgspec
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


class StoredState(msgspec.Struct):
    """The member_state row's JSON, field by field in the order it is written (`STATE_KEYS`), with the types that
    JSON holds: msgspec reads and writes it natively (dates ISO, Decimals as their strings, statuses and
    certification steps as arrays), with no Python call per value. The engine's `MemberState` has the same fields
    in the same order, so one is made of the other whole (`state_from_json`, `state_json`)."""

    region: str
    member_id: str
    birth_date: date
    enrolled_on: date
    statuses: list[tuple[date, str, str]]
    contribution_base: Decimal | None
    monthly_pension: Decimal | None
    legacy_monthly_credit: Decimal | None
    designated_facilities: frozenset[str]
    remote_pilot: bool
    retired_on: date | None
    retirement_pension: Decimal | None
    segment_starts: list[date]
    terminated_on: date | None
    termination_reason: str | None
    earlier_periods: list[tuple[date, date]]
    certifications: dict[str, list[tuple[date, Decimal | None, str | None]]]  # code -> (since, cap, kind) steps
    family_grants: dict[str, str]
    balance: Decimal
    account_closed: bool
    bonus_points: Decimal
    health_streak: int
    year_balances: dict[str, Decimal]
    incentives: dict[str, str]
    counters: dict[str, dict[str, Decimal]]
    contributions: dict[str, Decimal]


# Every key the state is written with. A member_state row lacking one was written by an earlier release, before the
# state kept it (`contributions`: the months credited, which enforce one contribution per member and month);
# read with a default it would settle the member otherwise than a replay does, so the service does not settle on
# such rows (`ledger.db.projection_store.earlier_shapes`): the projections are rebuilt from the ledger first.
STATE_KEYS = StoredState.__struct_fields__
# The parts an earlier release's rows may lack, read as empty (reports and enquiries read such rows as they are).
_LATER_PARTS = ("earlier_periods", "year_balances", "incentives", "contributions")

# Dicts by their keys and sets sorted, fields in their order: the bytes `dumps` gives of the same values.
_ENCODER = msgspec.json.Encoder(order="deterministic")
_DECODER = msgspec.json.Decoder(StoredState)
_MEMBER_FIELDS = attrgetter(*STATE_KEYS)
_STATUS = STATE_KEYS.index("statuses")
_CERTIFICATIONS = STATE_KEYS.index("certifications")


def state_json(member: MemberState) -> bytes:
    """The state as the member_state row keeps it: every part in a fixed order, dates ISO, Decimals as their
    strings, dicts by their keys and the designated facilities sorted; UTF-8, as `dumps` writes it. Called for
    every member a batch touches: the fields are taken whole and encoded natively."""
    values = list(_MEMBER_FIELDS(member))
    values[_STATUS] = [(s.since, s.insurance_type, s.person_type) for s in member.statuses]
    certifications = member.certifications
    if certifications:
        values[_CERTIFICATIONS] = {
            code: [(c.since, c.annual_cap, c.kind) for c in steps] for code, steps in certifications.items()
        }
    return _ENCODER.encode(StoredState(*values))


def _member(stored: StoredState) -> MemberState:
    member = MemberState(*msgspec.structs.astuple(stored))
    member.statuses = [Status(since, ins, person) for since, ins, person in stored.statuses]
    certifications = stored.certifications
    if certifications:
        member.certifications = {
            code: [Certification(since, code, cap, kind) for since, cap, kind in steps]
            for code, steps in certifications.items()
        }
    return member


def state_from_bytes(text: bytes | str) -> MemberState:
    """The inverse of `state_json`, from the row's text as read. Called for every member a batch loads: the JSON
    is parsed and typed natively."""
    try:
        return _member(_DECODER.decode(text))
    except msgspec.ValidationError:
        return state_from_json(orjson.loads(text))  # an earlier release's row, or not a state at all


def state_from_json(data: dict[str, Any]) -> MemberState:
    """The inverse of `state_json`: the state from its parsed JSON (an earlier release's lacking a part kept
    since read with that part empty)."""
    if not all(key in data for key in _LATER_PARTS):
        data = {"earlier_periods": [], "year_balances": {}, "incentives": {}, "contributions": {}, **data}
    return _member(msgspec.convert(data, StoredState))


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
