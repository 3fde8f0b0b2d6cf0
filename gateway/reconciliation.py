"""Reconciliation (对账): the facility's totals for a period against medledger's own settlements of that
facility (3201), and the settlements behind them listed (3202). A reversal counts -1 and its negated amounts."""

from __future__ import annotations

from .core import Gateway
from .envelope import Envelope
from .errors import bad_field
from .national import setl_time, sum_money
from .values import day, money, section, text

# What the HIS totals and what medledger totals, field by field.
TOTALS = {"medfee_sumamt": "medfee_sumamt", "fund_pay_sumamt": "hifp_pay", "acct_pay": "acct_pay"}


async def _period(gw: Gateway, env: Envelope) -> tuple[dict, list[dict]]:
    where = "input.data"
    data = section(env.input, "data", "input")
    first, last = day(data, "stmt_begndate", where), day(data, "stmt_enddate", where)
    if last < first:
        raise bad_field(f"{where}.stmt_enddate", "is before stmt_begndate")
    insutype = text(data, "insutype", where)
    clr_type = text(data, "clr_type", where)
    settled = await gw.enquiry.facility_settlements(env.fixmedins_code, first, last)
    return data, [r for r in settled if r["insutype"] == insutype and r["med_type"] == clr_type]


def _count(records: list[dict]) -> int:
    return sum(-1 if record.get("reverses") else 1 for record in records)


async def reconcile(gw: Gateway, env: Envelope) -> dict:
    """3201: whether the HIS's totals agree with medledger's (stmt_rslt 0 agree, 1 disagree, naming what)."""
    data, records = await _period(gw, env)
    ours = {name: sum_money(records, field) for name, field in TOTALS.items()}
    count = _count(records)
    theirs = {name: money(data, name, "input.data") for name in TOTALS}
    given = text(data, "fixmedins_setl_cnt", "input.data")
    if not given.isdigit():
        raise bad_field("input.data.fixmedins_setl_cnt", f"{given!r} is not a count")
    differing = [f"{name} {theirs[name]} ≠ {ours[name]}" for name in TOTALS if theirs[name] != ours[name]]
    if int(given) != count:
        differing.append(f"fixmedins_setl_cnt {given} ≠ {count}")
    return {
        "stmtinfo": {
            "setl_optins": gw.region(env),
            "stmt_rslt": "1" if differing else "0",
            "stmt_rslt_dscr": "；".join(differing) if differing else "对账一致",
            **{name: str(value) for name, value in ours.items()},
            "fixmedins_setl_cnt": count,
        }
    }


async def reconcile_details(gw: Gateway, env: Envelope) -> dict:
    """3202: medledger's settlements of the period, each with its figures; with `setl_ids` (the HIS's list,
    medledger's extension), also which ids either side lacks."""
    data, records = await _period(gw, env)
    listed = [
        {
            "setl_id": record["settlement_id"],
            "mdtrt_id": record["visit_id"],
            "psn_no": record["member_id"],
            "medfee_sumamt": record["medfee_sumamt"],
            "fund_pay_sumamt": record["hifp_pay"],
            "acct_pay": record["acct_pay"],
            "refd_setl_flag": "1" if record.get("reverses") else "0",
            "setl_time": setl_time(record),
        }
        for record in records
    ]
    answer: dict = {"stmtdetail": listed, "medfee_sumamt": str(sum_money(records, "medfee_sumamt"))}
    theirs = data.get("setl_ids")
    if theirs is not None:
        if not isinstance(theirs, list) or not all(isinstance(i, str) for i in theirs):
            raise bad_field("input.data.setl_ids", "must be a list of setl_id strings")
        ours = {line["setl_id"] for line in listed}
        answer["missing_at_medledger"] = sorted(set(theirs) - ours)
        answer["missing_at_his"] = sorted(ours - set(theirs))
    return answer
