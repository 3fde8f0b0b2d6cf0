"""Settling at the counter through the gateway: what is refused and why (nothing written), a message sent again,
refusals kept by the ledger, two facilities at once, withdrawn fee details, an inpatient stay, reconciliation."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import httpx

from tests.gateway.counter import (
    NANJING_HOSPITAL,
    NINGXIA_HOSPITAL,
    WEIHAI_HOSPITAL,
    enrol,
    enrolment,
    member_id,
    registered,
    settling,
    upload,
)
from tests.gateway.flow import Producer
from tests.gateway.his import His, ok
from tests.ledger.helpers import fetch

NANJING, NINGXIA, WEIHAI = "320100", "640000", "371000"


def refused_with(answer: dict, reason: str, field: str | None = None) -> None:
    assert answer["infcode"] == -1, answer
    assert answer["err_msg"].startswith(f"[{reason}]"), answer["err_msg"]
    if field is not None:
        assert field in answer["err_msg"], answer["err_msg"]


async def counter(stack, region: str, hospital: str, effective: str = "2023-01-01"):
    member = member_id(region)
    await enrol(stack, enrolment(region, member, effective))
    client = httpx.AsyncClient(base_url=stack.gateway.url, timeout=30)
    return member, client, His(client, hospital)


def test_bad_input_is_refused_naming_the_field_and_writes_nothing(stack):
    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client, Producer(stack) as producer:
            before = await producer.head()
            response = await his.post(b'{"infno": "1101", "infno": "2207"}')
            refused_with(response.json(), "invalid_input", "infno")
            response = await his.post(b"not json")
            refused_with(response.json(), "invalid_input", "body")
            response = await his.post(b'{"infno": "' + b"1" * 1_100_000 + b'"}')
            refused_with(response.json(), "invalid_input", "larger than")
            refused_with(await his.call("9999", {}, NANJING), "unknown_infno", "infno")
            refused_with(
                await his.call("2201", {"data": {"psn_no": member, "insutype": "310"}}, NANJING),
                "invalid_input",
                "input.data.begntime",
            )
            stranger = member_id(NANJING)
            refused_with(
                await his.call(
                    "2201",
                    {"data": {"psn_no": stranger, "insutype": "310", "begntime": "2023-03-01 09:00:00"}},
                    NANJING,
                ),
                "member_not_enrolled",
                stranger,
            )
            resident = {"psn_no": member, "insutype": "390", "begntime": "2023-03-01 09:00:00"}
            refused_with(await his.call("2201", {"data": resident}, NANJING), "invalid_input", "input.data.insutype")
            mdtrt_id = await registered(his, NANJING, member, "2023-03-01 09:00:00")
            refused_with(
                await upload(his, NANJING, member, mdtrt_id, [("NOSUCHCODE", "1", "10.00")], batch="2"),
                "unknown_catalogue_code",
                "med_list_codg",
            )
            refused_with(
                await upload(his, NANJING, member, mdtrt_id, [("FA0101", "2", "10.00", "25.00")], batch="2"),
                "invalid_input",
                "det_item_fee_sumamt",
            )
            refused_with(
                await his.call("2207", settling(member, mdtrt_id, "299.00"), NANJING), "invalid_input", "medfee_sumamt"
            )
            refused_with(
                await his.call("2206", settling(member, "M-NOT-REGISTERED", "300.00"), NANJING), "unknown_visit"
            )
            assert await producer.head() == before
            unlisted = His(client, "H99999900001")
            refused_with(
                await unlisted.call(
                    "2201", {"data": {"psn_no": member, "insutype": "310", "begntime": "2023-03-01 09:00:00"}}, NANJING
                ),
                "unknown_facility",
                "fixmedins_code",
            )
            assert await producer.head() == before

    asyncio.run(run())


def test_a_message_sent_again_settles_once_and_answers_the_same(stack):
    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            mdtrt_id = await registered(his, NANJING, member, "2023-03-02 09:00:00")
            given = settling(member, mdtrt_id, "300.00")
            first = await his.call("2207", given, NANJING, msgid="H32010200011-RETRY-0001")
            again = await his.call("2207", given, NANJING, msgid="H32010200011-RETRY-0001")
            return member, first, again

    member, first, again = asyncio.run(run())
    assert first["infcode"] == 0 and again["infcode"] == 0
    assert first["output"] == again["output"]
    rows = fetch(stack.db, "SELECT count(*) FROM ledger_settlements WHERE member_id = $1", member)
    assert rows[0][0] == 1
    events = fetch(stack.db, "SELECT count(*) FROM ledger_events WHERE member_id = $1", member)
    assert events[0][0] == 2  # the enrolment and the visit


def test_details_cannot_change_after_settlement_and_a_reversal_is_answered_and_queried(stack):
    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            mdtrt_id = await registered(his, NANJING, member, "2023-03-03 09:00:00")
            settled = ok(await his.call("2207", settling(member, mdtrt_id, "300.00"), NANJING))
            changed = await upload(his, NANJING, member, mdtrt_id, [("FA0101", "1", "50.00")], batch="2")
            cancelled = await his.call(
                "2205", {"data": {"mdtrt_id": mdtrt_id, "psn_no": member, "chrg_bchno": "1"}}, NANJING
            )
            setl_id = settled["setlinfo"]["setl_id"]
            reversal = ok(
                await his.call("2208", {"data": {"psn_no": member, "setl_id": setl_id, "mdtrt_id": mdtrt_id}}, NANJING)
            )
            queried = ok(await his.call("5203", {"data": {"psn_no": member, "mdtrt_id": mdtrt_id}}, NANJING))
            return settled, changed, cancelled, reversal, queried

    settled, changed, cancelled, reversal, queried = asyncio.run(run())
    refused_with(changed, "visit_settled", "mdtrt_id")
    refused_with(cancelled, "visit_settled", "mdtrt_id")
    info = reversal["setlinfo"]
    assert info["reverses_setl_id"] == settled["setlinfo"]["setl_id"]
    assert Decimal(info["medfee_sumamt"]) == -Decimal(settled["setlinfo"]["medfee_sumamt"])
    assert Decimal(info["hifp_pay"]) == -Decimal(settled["setlinfo"]["hifp_pay"])
    assert "的退费" in reversal["setldetail"][0]["setl_proc_info"]
    assert queried["setlinfo"] == settled["setlinfo"]
    assert queried["revsinfo"] == info


def test_a_settlement_the_ledger_refuses_is_answered_with_its_reason_and_kept(stack):
    async def run():
        # Weihai's 2022 is closed: a visit of 2022 can no longer settle.
        member, client, his = await counter(stack, WEIHAI, WEIHAI_HOSPITAL, effective="2022-07-01")
        close = {
            "event_id": f"close-{member}",
            "event_type": "period.year_closed",
            "schema_version": 1,
            "occurred_at": "2023-01-05T10:00:00+08:00",
            "region": WEIHAI,
            "year": 2022,
        }
        async with client:
            mdtrt_id = await registered(his, WEIHAI, member, "2022-09-01 09:00:00")
            await enrol(stack, json.dumps(close))
            presettled = await his.call("2206", settling(member, mdtrt_id, "300.00"), WEIHAI)
            settled = await his.call("2207", settling(member, mdtrt_id, "300.00"), WEIHAI)
            return member, presettled, settled

    member, presettled, settled = asyncio.run(run())
    refused_with(presettled, "year_closed", "2022")
    refused_with(settled, "year_closed", "2022")
    kept = fetch(stack.db, "SELECT reason, payload FROM ledger_rejections WHERE reason = 'year_closed'")
    payloads = [json.loads(payload) for reason, payload in kept]
    assert [p["member_id"] for p in payloads if p.get("member_id") == member] == [member]


async def presettled_and_settled(stack, region: str, hospital: str, when: str) -> tuple[dict, dict]:
    """The 2206 and then the 2207 answer of a new member's visit of 300.00 at `hospital` at `when`."""
    member, client, his = await counter(stack, region, hospital)
    async with client:
        mdtrt_id = await registered(his, region, member, when)
        given = settling(member, mdtrt_id, "300.00")
        return await his.call("2206", given, region), await his.call("2207", given, region)


def test_two_facilities_settle_at_once(stack):
    async def one(region, hospital, when):
        presettled, settled = await presettled_and_settled(stack, region, hospital, when)
        return ok(presettled), ok(settled)

    async def run():
        return await asyncio.gather(
            one(NANJING, NANJING_HOSPITAL, "2023-04-01 09:00:00"),
            one(NINGXIA, NINGXIA_HOSPITAL, "2023-07-01 09:00:00"),
        )

    for presettled, settled in asyncio.run(run()):
        assert settled["setlinfo"]["setl_id"]
        assert {**presettled["setlinfo"], "setl_id": settled["setlinfo"]["setl_id"]} == settled["setlinfo"]
        assert presettled["setldetail"] == settled["setldetail"]
        assert Decimal(settled["setlinfo"]["medfee_sumamt"]) == Decimal("300.00")


def test_withdrawn_fee_details_are_not_settled(stack):
    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            mdtrt_id = await registered(his, NANJING, member, "2023-05-01 09:00:00")
            ok(await upload(his, NANJING, member, mdtrt_id, [("FA0201", "1", "80.00")], batch="2"))
            ok(await his.call("2205", {"data": {"mdtrt_id": mdtrt_id, "psn_no": member, "chrg_bchno": "1"}}, NANJING))
            wrong = await his.call("2207", settling(member, mdtrt_id, "380.00"), NANJING)
            return wrong, ok(await his.call("2207", settling(member, mdtrt_id, "80.00"), NANJING))

    wrong, settled = asyncio.run(run())
    refused_with(wrong, "invalid_input", "medfee_sumamt")
    assert settled["setlinfo"]["medfee_sumamt"] == "80.00"


def test_a_visit_during_an_open_stay_is_an_inpatient_period_visit(stack):
    async def run():
        member, client, his = await counter(stack, NINGXIA, NINGXIA_HOSPITAL)
        async with client:
            stay = ok(
                await his.call(
                    "2401",
                    {"mdtrtinfo": {"psn_no": member, "insutype": "310", "begntime": "2023-08-01 08:00:00"}},
                    NINGXIA,
                )
            )["result"]["mdtrt_id"]
            during = await registered(his, NINGXIA, member, "2023-08-02 09:00:00")
            inside = ok(await his.call("2207", settling(member, during, "300.00"), NINGXIA))
            discharged = {"mdtrt_id": stay, "psn_no": member, "endtime": "2023-08-05 10:00:00"}
            ok(await his.call("2402", {"dscginfo": discharged}, NINGXIA))
            after = await registered(his, NINGXIA, member, "2023-08-06 09:00:00")
            return inside, ok(await his.call("2207", settling(member, after, "300.00"), NINGXIA))

    inside, after = asyncio.run(run())
    assert inside["setlinfo"]["hifp_pay"] == "0.00"
    assert "住院期间发生的门诊费用基金不予支付" in inside["setldetail"][0]["setl_proc_info"]
    assert "住院期间" not in after["setldetail"][0]["setl_proc_info"]


def test_reconciliation_agrees_with_the_ledger_and_lists_the_settlements_behind_a_mismatch(stack):
    async def run():
        member, client, his = await counter(stack, NINGXIA, "H64010400150", effective="2023-06-01")
        async with client:
            settled = []
            for day in ("2023-09-01", "2023-09-02"):
                mdtrt_id = await registered(his, NINGXIA, member, f"{day} 09:00:00")
                settled.append(ok(await his.call("2207", settling(member, mdtrt_id, "300.00"), NINGXIA))["setlinfo"])
            period = {"stmt_begndate": "2023-09-01", "stmt_enddate": "2023-09-30", "insutype": "310", "clr_type": "11"}
            fund = str(sum(Decimal(s["hifp_pay"]) for s in settled))
            totals = {"medfee_sumamt": "600.00", "fund_pay_sumamt": fund, "acct_pay": "0.00"}
            agreed = ok(await his.call("3201", {"data": {**period, **totals, "fixmedins_setl_cnt": "2"}}, NINGXIA))
            short = {**totals, "medfee_sumamt": "300.00", "fixmedins_setl_cnt": "1"}
            differs = ok(await his.call("3201", {"data": {**period, **short}}, NINGXIA))
            listed = ok(await his.call("3202", {"data": {**period, "setl_ids": [settled[0]["setl_id"]]}}, NINGXIA))
            return settled, agreed, differs, listed

    settled, agreed, differs, listed = asyncio.run(run())
    assert agreed["stmtinfo"]["stmt_rslt"] == "0"
    assert differs["stmtinfo"]["stmt_rslt"] == "1"
    assert "medfee_sumamt 300.00 ≠ 600.00" in differs["stmtinfo"]["stmt_rslt_dscr"]
    assert [line["setl_id"] for line in listed["stmtdetail"]] == [s["setl_id"] for s in settled]
    assert listed["missing_at_his"] == [settled[1]["setl_id"]] and listed["missing_at_medledger"] == []


def test_a_catalogue_changed_on_disk_is_used_without_a_restart(stack):
    catalogue = stack.reference / "catalogue.csv"
    original = catalogue.read_text(encoding="utf-8")

    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            mdtrt_id = await registered(his, NANJING, member, "2023-06-01 09:00:00")
            unknown = await upload(his, NANJING, member, mdtrt_id, [("NEWCODE01", "1", "10.00")], batch="2")
            catalogue.write_text(original + "NEWCODE01,新增药品,09,drug,03,,\n", encoding="utf-8")
            for _ in range(50):
                known = await upload(his, NANJING, member, mdtrt_id, [("NEWCODE01", "1", "10.00")], batch="2")
                if known["infcode"] == 0:
                    break
                await asyncio.sleep(0.1)
            return unknown, known

    try:
        unknown, known = asyncio.run(run())
    finally:
        catalogue.write_text(original, encoding="utf-8")
    refused_with(unknown, "unknown_catalogue_code", "NEWCODE01")
    assert ok(known)["result"][0]["fulamt_ownpay_amt"] == "10.00"


def test_a_lost_ledger_connection_is_ridden_out(stack):
    """The connections that hear the ledger's commits are cut: the next settlement is still answered, and the
    gateway listens again."""
    outcomes = stack.gateway.gateway.outcomes
    assert outcomes.listening
    listening = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    fetch(stack.db, f"SELECT pg_terminate_backend(pid) FROM ({listening}) AS l", owner=True)
    for _ in range(50):
        if not outcomes.listening:
            break
        time.sleep(0.1)
    assert not outcomes.listening

    async def run():
        member, client, his = await counter(stack, NANJING, NANJING_HOSPITAL)
        async with client:
            mdtrt_id = await registered(his, NANJING, member, "2023-06-02 09:00:00")
            return await his.call("2207", settling(member, mdtrt_id, "300.00"), NANJING)

    assert ok(asyncio.run(run()))["setlinfo"]["setl_id"]
    for _ in range(100):
        if outcomes.listening:
            break
        time.sleep(0.1)
    assert outcomes.listening
