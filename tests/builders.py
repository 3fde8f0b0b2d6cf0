"""Builders for contract events (shared/event-contract.md) and readers for the engine's outputs.

Each builder returns a plain dict with sensible defaults; keyword arguments override any field. `as_line(event)`
turns one into a JSON line, `lines(*events)` a whole stream. Event ids, visit ids and payment ids come from a
module counter: call `fresh()` (the scenario modules do it in an autouse fixture) to restart it, so every test
builds the same ids whatever ran before it.

Dates: pass `on="YYYY-MM-DD"`; `occurred_at` becomes that day at 10:00 Beijing time unless `at` says otherwise.
Money may be given as str, int or Decimal; ints and Decimals are written with 2 decimals, strings are kept verbatim
(so a test can send "1.005" on purpose).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from policies.outputs import PAYMENT_AMOUNTS, VISIT_AMOUNTS

REGIONS = {"ningxia": "640000", "weihai": "371000", "nanjing": "320100", "inner_mongolia": "150000"}
NINGXIA, WEIHAI, NANJING, INNER_MONGOLIA = "640000", "371000", "320100", "150000"

_counter = itertools.count(1)


def fresh() -> None:
    """Restart the id counter so each test's ids are deterministic and independent of test order."""
    global _counter
    _counter = itertools.count(1)


def _next(prefix: str) -> str:
    return f"{prefix}-{next(_counter):05d}"


def money(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        raise TypeError("write money as a string, int or Decimal, never a float")
    return f"{Decimal(value):.2f}"


def _pct(base: str, rate: str) -> str:
    return str((Decimal(base) * Decimal(rate)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _at(on: str, at: str = "10:00:00") -> str:
    return f"{on}T{at}+08:00"


def _envelope(event_type: str, region: str, member: str | None, on: str, at: str, event_id: str | None) -> dict:
    event = {
        "event_id": event_id or _next("ev"),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": _at(on, at),
        "region": region,
    }
    if member is not None:
        event["member_id"] = member
    return event


def _build(event_type: str, region: str, member: str | None, on: str, fields: dict, kw: dict) -> dict:
    at = kw.pop("at", "10:00:00")
    event_id = kw.pop("event_id", None)
    event = _envelope(event_type, region, member, on, at, event_id)
    event.update(fields)
    event.update(kw)
    return event


def as_line(event: dict) -> str:
    return json.dumps(event, ensure_ascii=False)


def lines(*events: dict | Iterable[dict] | str) -> list[str]:
    """Flatten events (dicts, lists of dicts, or raw strings for malformed input) into JSON lines."""
    out: list[str] = []
    for item in events:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.append(as_line(item))
        else:
            out.extend(lines(*item))
    return out


# --- enrollment events -------------------------------------------------------------------------------------------

_RESIDENT_TYPES = {"resident_tier1", "resident_tier2", "resident_minor"}


def enrolled(
    member: str,
    region: str,
    on: str = "2023-01-01",
    person_type: str = "in_service",
    birth_date: str = "1980-05-15",
    **kw,
) -> dict:
    """member.enrolled, effective on `on`. Optional contract fields (contribution_base, monthly_pension,
    legacy_monthly_credit, designated_facilities, remote_pilot) are added only when given."""
    insurance_type = kw.pop("insurance_type", "resident" if person_type in _RESIDENT_TYPES else "employee")
    fields = {
        "insurance_type": insurance_type,
        "person_type": person_type,
        "birth_date": birth_date,
        "effective_date": kw.pop("effective_date", on),
    }
    for optional in ("contribution_base", "monthly_pension", "legacy_monthly_credit"):
        if optional in kw:
            fields[optional] = money(kw.pop(optional))
    return _build("member.enrolled", region, member, on, fields, kw)


def retired(member: str, region: str, on: str, pension: Any = "3000.00", **kw) -> dict:
    """member.retired: the retirement procedure completed on `on` (rates switch from the next month)."""
    fields = {"effective_date": kw.pop("effective_date", on), "monthly_pension": money(pension)}
    return _build("member.retired", region, member, on, fields, kw)


def type_changed(member: str, region: str, on: str, person_type: str, **kw) -> dict:
    insurance_type = kw.pop("insurance_type", "resident" if person_type in _RESIDENT_TYPES else "employee")
    fields = {
        "insurance_type": insurance_type,
        "person_type": person_type,
        "effective_date": kw.pop("effective_date", on),
    }
    return _build("member.insurance_type_changed", region, member, on, fields, kw)


def interrupted(member: str, region: str, on: str, **kw) -> dict:
    return _build(
        "member.contribution_interrupted", region, member, on, {"effective_date": kw.pop("effective_date", on)}, kw
    )


def resumed(member: str, region: str, on: str, **kw) -> dict:
    return _build(
        "member.contribution_resumed", region, member, on, {"effective_date": kw.pop("effective_date", on)}, kw
    )


def terminated(member: str, region: str, on: str, reason: str = "death", **kw) -> dict:
    return _build(
        "member.terminated", region, member, on, {"reason": reason, "effective_date": kw.pop("effective_date", on)}, kw
    )


def chronic_certified(
    member: str, region: str, disease: str, cap: Any, on: str = "2023-06-01", kind: str | None = None, **kw
) -> dict:
    """member.chronic_certified; `kind` (common/special) is sent only when given (Weihai residents)."""
    fields = {"disease_code": disease, "annual_cap": money(cap), "effective_date": kw.pop("effective_date", on)}
    if kind is not None:
        fields["kind"] = kind
    return _build("member.chronic_certified", region, member, on, fields, kw)


def cap_adjusted(member: str, region: str, disease: str, cap: Any, on: str, **kw) -> dict:
    fields = {"disease_code": disease, "annual_cap": money(cap), "effective_date": kw.pop("effective_date", on)}
    return _build("member.chronic_cap_adjusted", region, member, on, fields, kw)


def chronic_revoked(member: str, region: str, disease: str, on: str, **kw) -> dict:
    fields = {"disease_code": disease, "effective_date": kw.pop("effective_date", on)}
    return _build("member.chronic_revoked", region, member, on, fields, kw)


def aid_authorized(
    member: str, region: str, beneficiary: str, relation: str = "spouse", on: str = "2023-06-01", **kw
) -> dict:
    """family.aid_authorized: `member` (the account holder) lets `beneficiary` use the account."""
    return _build(
        "family.aid_authorized", region, member, on, {"beneficiary_id": beneficiary, "relation": relation}, kw
    )


def aid_revoked(
    member: str, region: str, beneficiary: str, relation: str = "spouse", on: str = "2023-06-01", **kw
) -> dict:
    return _build("family.aid_revoked", region, member, on, {"beneficiary_id": beneficiary, "relation": relation}, kw)


# --- account events ----------------------------------------------------------------------------------------------


def contribution(
    member: str,
    region: str,
    month: str,
    base: Any,
    individual: Any = None,
    employer: Any = None,
    on: str | None = None,
    **kw,
) -> dict:
    """account.contribution_posted for `month` (YYYY-MM), posted on the 15th of that month by default.
    The individual part defaults to 2% of the base, the employer part to 8%."""
    fields = {
        "month": month,
        "contribution_base": money(base),
        "individual_amount": money(individual) if individual is not None else _pct(money(base), "0.02"),
        "employer_amount": money(employer) if employer is not None else _pct(money(base), "0.08"),
    }
    return _build("account.contribution_posted", region, member, on or f"{month}-15", fields, kw)


def pension(member: str, region: str, month: str, amount: Any = "3000.00", on: str | None = None, **kw) -> dict:
    """account.pension_paid for `month`, paid on the 10th of that month by default."""
    fields = {"month": month, "monthly_pension": money(amount)}
    return _build("account.pension_paid", region, member, on or f"{month}-10", fields, kw)


def payment(
    member: str,
    region: str,
    amount: Any,
    purpose: str = "own_medical",
    on: str = "2023-07-01",
    beneficiary: str | None = None,
    facility: str | None = None,
    **kw,
) -> dict:
    """account.payment_requested; beneficiary_id / facility_id are sent only when given."""
    fields = {"payment_id": kw.pop("payment_id", None) or _next("pay"), "purpose": purpose, "amount": money(amount)}
    if beneficiary is not None:
        fields["beneficiary_id"] = beneficiary
    if facility is not None:
        fields["facility_id"] = facility
    return _build("account.payment_requested", region, member, on, fields, kw)


def external_fund(
    member: str, region: str, amount: Any, source: str = "inpatient", on: str = "2023-07-01", **kw
) -> dict:
    return _build("account.external_fund_payment", region, member, on, {"amount": money(amount), "source": source}, kw)


# --- visits ------------------------------------------------------------------------------------------------------


def line(
    amount: Any,
    category: str = "drug",
    out_of_catalog: Any = "0",
    pre_self_pay: Any = "0",
    item_code: str | None = None,
) -> dict:
    """One visit item. Category codes: drug, exam, treatment, material, consultation_fee, general_diagnosis_fee,
    nucleic_acid_test, health_checkup, public_health, other."""
    return {
        "item_code": item_code or f"{category.upper()[:4]}-{next(_counter):05d}",
        "category": category,
        "amount": money(amount),
        "out_of_catalog_amount": money(out_of_catalog),
        "pre_self_pay_amount": money(pre_self_pay),
    }


def prescribed_by(level: int = 3, grade: str | None = "A", kind: str = "general_hospital") -> dict:
    """The prescriber of an external prescription filled at a retail pharmacy."""
    return {"facility_level": level, "facility_grade": grade, "facility_kind": kind}


def visit(
    member: str,
    region: str,
    on: str = "2023-07-01",
    items: list[dict] | None = None,
    level: int = 3,
    grade: str | None = "A",
    kind: str = "general_hospital",
    **kw,
) -> dict:
    """visit.submitted with every contract field present. Defaults: designated general outpatient visit, not in
    an inpatient stay, not out of area, no prescription, paid in cash, one drug line of 100.00.
    Short keyword names: visit_kind, disease (disease_code), facility (facility_id), designated, inpatient
    (inpatient_period), out_of_area, prescription, account (pay_with_account), payer (account_payer_id)."""
    fields = {
        "visit_id": kw.pop("visit_id", None) or _next("V"),
        "facility_id": kw.pop("facility", None) or f"F-{region}-{kind}-{level}{grade or ''}",
        "facility_level": level,
        "facility_grade": grade,
        "facility_kind": kind,
        "designated": kw.pop("designated", True),
        "visit_kind": kw.pop("visit_kind", "general"),
        "disease_code": kw.pop("disease", None),
        "inpatient_period": kw.pop("inpatient", False),
        "out_of_area": kw.pop("out_of_area", "none"),
        "prescription": kw.pop("prescription", None),
        "pay_with_account": kw.pop("account", False),
        "account_payer_id": kw.pop("payer", None),
        "items": items if items is not None else [line("100.00")],
    }
    return _build("visit.submitted", region, member, on, fields, kw)


def chronic_visit(member: str, region: str, disease: str, on: str = "2023-07-01", **kw) -> dict:
    return visit(member, region, on=on, visit_kind="chronic", disease=disease, **kw)


def reversed_visit(
    member: str, region: str, visit_id: str, on: str = "2023-07-02", reason: str = "refund", **kw
) -> dict:
    return _build("visit.reversed", region, member, on, {"visit_id": visit_id, "reason": reason}, kw)


# --- region-level events -----------------------------------------------------------------------------------------


def year_closed(region: str, year: int, on: str | None = None, **kw) -> dict:
    """period.year_closed for `year`, by default at 01:00 on 1 January of the following year."""
    kw.setdefault("at", "01:00:00")
    return _build("period.year_closed", region, None, on or f"{year + 1}-01-01", {"year": year}, kw)


def settle(*events, parameters=None) -> list[dict]:
    """The offline engine's outputs for these events (see `lines`)."""
    from ledger.offline import settle_lines

    return settle_lines(lines(*events), parameters=parameters)


def drug(amount: Any, **kw) -> list[dict]:
    """A visit's items: one drug line."""
    return [line(amount, **kw)]


# --- reading the engine's outputs --------------------------------------------------------------------------------


def settlements(outputs: list[dict]) -> list[dict]:
    return [o for o in outputs if "settlement_id" in o]


def movements(outputs: list[dict], member: str | None = None, purpose: str | None = None) -> list[dict]:
    return [
        o
        for o in outputs
        if "movement_id" in o
        and (member is None or o["member_id"] == member)
        and (purpose is None or o["purpose"] == purpose)
    ]


def rejections(outputs: list[dict]) -> list[dict]:
    return [o for o in outputs if "rejected" in o]


def incentives(outputs: list[dict], member: str | None = None, year: int | None = None) -> list[dict]:
    return [
        o
        for o in outputs
        if "incentive" in o
        and (member is None or o["member_id"] == member)
        and (year is None or int(o["year"]) == year)
    ]


def settled(outputs: list[dict], event: dict) -> dict:
    """The (non-reversal) settlement of a visit event; fails loudly when the visit was not settled."""
    found = [s for s in settlements(outputs) if s["visit_id"] == event["visit_id"] and not s.get("reverses")]
    assert len(found) == 1, f"expected one settlement for {event['visit_id']}, got {found or rejected(outputs, event)}"
    return found[0]


def reversal_of(outputs: list[dict], event: dict) -> dict:
    found = [s for s in settlements(outputs) if s["visit_id"] == event["visit_id"] and s.get("reverses")]
    assert len(found) == 1, f"expected one reversal for {event['visit_id']}, got {found}"
    return found[0]


def rejected(outputs: list[dict], event: dict) -> dict | None:
    found = [r for r in rejections(outputs) if r["rejected"] == event["event_id"]]
    return found[0] if found else None


def reason(outputs: list[dict], event: dict) -> str | None:
    r = rejected(outputs, event)
    return r["reason"] if r else None


def caused_by(outputs: list[dict], event: dict) -> list[dict]:
    """The account movements an event caused."""
    return [m for m in movements(outputs) if m["event_id"] == event["event_id"]]


def assert_identities(s: dict) -> None:
    """Contract identities, to the fen: total = fund + member share; member share = account + cash."""
    total, fund, share = Decimal(s["total_amount"]), Decimal(s["fund_paid"]), Decimal(s["member_share"])
    assert total == fund + share, s
    assert share == Decimal(s["account_paid"]) + Decimal(s["cash_paid"]), s
    for key in (
        "total_amount",
        "fund_paid",
        "member_share",
        "account_paid",
        "cash_paid",
        "deductible_paid",
        "over_limit_amount",
        "in_policy_amount",
    ):
        assert isinstance(s[key], str) and len(s[key].rsplit(".", 1)[-1]) == 2, (key, s[key])


SETTLEMENT_MONEY = (*VISIT_AMOUNTS, *PAYMENT_AMOUNTS)


def assert_reverses(reversal: dict, original: dict) -> None:
    """A reversal points at the original and carries every amount negated (compared as Decimal, so "-0.00" and
    "0.00" are both accepted for zero)."""
    assert reversal["reverses"] == original["settlement_id"], reversal
    assert reversal["visit_id"] == original["visit_id"]
    for key in SETTLEMENT_MONEY:
        assert Decimal(reversal[key]) == -Decimal(original[key]), (key, reversal[key], original[key])


def money_of(s: dict, *keys: str) -> dict:
    """Pick money fields for a compact equality assertion: money_of(s, "fund_paid", ...) == {...}."""
    return {k: s[k] for k in keys}


SETTLEMENT_CORE = ("deductible_paid", "fund_paid", "over_limit_amount", "member_share")


def core(s: dict) -> tuple[str, str, str, str]:
    """(deductible_paid, fund_paid, over_limit_amount, member_share) of a settlement."""
    return tuple(s[k] for k in SETTLEMENT_CORE)  # type: ignore[return-value]
