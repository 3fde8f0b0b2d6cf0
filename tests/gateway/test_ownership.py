"""Each facility's counter state is its own: an admission or filing is ended only by the facility that made it,
only a facility of facilities.csv makes one, and a msgid used for one transaction never answers another's
settlement."""

from __future__ import annotations

import asyncio
import logging

from tests.gateway.conftest import UNLISTED
from tests.gateway.counter import NANJING_HOSPITAL, NINGXIA_HOSPITAL, registered, settling
from tests.gateway.his import His, ok
from tests.gateway.test_settlement import NANJING, NINGXIA, counter, refused_with
from tests.ledger.helpers import fetch

# Another Ningxia hospital: a second counter in the same scheme.
NINGXIA_CLINIC = "H64010400150"


def admission(member: str) -> dict:
    return {"mdtrtinfo": {"psn_no": member, "insutype": "310", "begntime": "2023-08-01 08:00:00"}}


def filing(member: str) -> dict:
    return {"data": {"psn_no": member, "fil_type": "1", "begndate": "2023-08-01", "enddate": "2023-12-31"}}


def test_another_facility_cannot_discharge_a_stay_or_cancel_a_filing(stack):
    async def run():
        member, client, his = await counter(stack, NINGXIA, NINGXIA_HOSPITAL)
        other = His(client, NINGXIA_CLINIC)
        async with client:
            stay = ok(await his.call("2401", admission(member), NINGXIA))["result"]["mdtrt_id"]
            # Discharged by another facility before the visit: were it taken, the visit would be an outpatient one.
            discharge = {"mdtrt_id": stay, "psn_no": member, "endtime": "2023-08-01 10:00:00"}
            foreign_discharge = await other.call("2402", {"dscginfo": discharge}, NINGXIA)
            serial = ok(await his.call("2501", filing(member), NINGXIA))["result"]["trt_dcla_detl_sn"]
            withdrawal = {"trt_dcla_detl_sn": serial, "psn_no": member}
            foreign_cancel = await other.call("2502", {"data": withdrawal}, NINGXIA)
            during = await registered(his, NINGXIA, member, "2023-08-02 09:00:00")
            inside = ok(await his.call("2207", settling(member, during, "300.00"), NINGXIA))
            own_cancel = await his.call("2502", {"data": withdrawal}, NINGXIA)
            own_discharge = await his.call("2402", {"dscginfo": discharge}, NINGXIA)
            return foreign_discharge, foreign_cancel, inside, own_cancel, own_discharge, serial

    foreign_discharge, foreign_cancel, inside, own_cancel, own_discharge, serial = asyncio.run(run())
    refused_with(foreign_discharge, "unknown_visit", "input.dscginfo.mdtrt_id")
    refused_with(foreign_cancel, "invalid_input", "input.data.trt_dcla_detl_sn")
    assert "住院期间发生的门诊费用基金不予支付" in inside["setldetail"][0]["setl_proc_info"]
    assert own_cancel["infcode"] == 0 and own_discharge["infcode"] == 0
    assert stack.gateway.gateway.counter.filings[serial].cancelled


def test_a_caller_not_in_facilities_csv_can_neither_admit_nor_file(stack):
    async def run():
        member, client, _his = await counter(stack, NINGXIA, NINGXIA_HOSPITAL)
        unlisted = His(client, UNLISTED)
        async with client:
            admitted = await unlisted.call("2401", admission(member), NINGXIA)
            filed = await unlisted.call("2501", filing(member), NINGXIA)
            return member, admitted, filed

    member, admitted, filed = asyncio.run(run())
    refused_with(admitted, "unknown_facility", "fixmedins_code")
    refused_with(filed, "unknown_facility", "fixmedins_code")
    counter_state = stack.gateway.gateway.counter
    assert not [s for s in counter_state.stays.values() if s[1] == member]
    assert not [f for f in counter_state.filings.values() if f.psn_no == member]


def test_a_msgid_of_a_settlement_reused_for_its_reversal_reverses_it(stack):
    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            mdtrt_id = await registered(his, NANJING, member, "2023-03-05 09:00:00")
            msgid = f"{NANJING_HOSPITAL}-ONE-MSGID-{member[-6:]}"
            settled = ok(await his.call("2207", settling(member, mdtrt_id, "300.00"), NANJING, msgid=msgid))
            setl_id = settled["setlinfo"]["setl_id"]
            given = {"data": {"psn_no": member, "setl_id": setl_id, "mdtrt_id": mdtrt_id}}
            reversal = await his.call("2208", given, NANJING, msgid=msgid)
            return member, setl_id, reversal

    member, setl_id, reversal = asyncio.run(run())
    assert ok(reversal)["setlinfo"]["reverses_setl_id"] == setl_id
    [[count]] = fetch(stack.db, "SELECT count(*) FROM ledger_settlements WHERE member_id = $1", member)
    assert count == 2  # the settlement and its reversal


def test_a_msgid_reused_for_another_visit_is_refused_not_answered_with_the_first_visit(stack):
    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            first = await registered(his, NANJING, member, "2023-03-06 09:00:00")
            second = await registered(his, NANJING, member, "2023-03-07 09:00:00", fees=(("FA0101", "2", "100.00"),))
            msgid = f"{NANJING_HOSPITAL}-SAME-MSGID-{member[-6:]}"
            settled = ok(await his.call("2207", settling(member, first, "300.00"), NANJING, msgid=msgid))
            reused = await his.call("2207", settling(member, second, "200.00"), NANJING, msgid=msgid)
            return settled, reused

    settled, reused = asyncio.run(run())
    assert settled["setlinfo"]["setl_id"]
    refused_with(reused, "msgid_reused", "msgid")


def test_every_answered_message_is_logged_with_its_caller_and_member(stack, caplog):
    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            msgid = f"{NANJING_HOSPITAL}-LOOKUP-{member[-6:]}"
            answer = await his.call("1101", {"data": {"psn_no": member}}, NANJING, msgid=msgid)
            return member, msgid, answer

    with caplog.at_level(logging.INFO, logger="medledger.gateway"):
        member, msgid, answer = asyncio.run(run())
    assert answer["infcode"] == 0
    logged = [r for r in caplog.records if r.getMessage() == "message answered" and getattr(r, "msgid", None) == msgid]
    assert len(logged) == 1
    record = logged[0]
    assert record.levelno == logging.INFO
    assert (record.caller, record.infno, record.psn_no, record.region, record.infcode) == (
        NANJING_HOSPITAL,
        "1101",
        member,
        NANJING,
        0,
    )
