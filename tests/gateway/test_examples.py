"""Every example region's visits settled through the gateway as a HIS settles them (1101 → 2201 → 2203 → 2204 →
2206 → 2207, 2208 for a reversal), with the same figures `medledger settle` gives for the same events."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gateway.national import settlement_answer
from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.gateway.flow import Producer
from tests.gateway.his import His, catalogue_rows, register_visit, settlement_input
from tests.ledger.helpers import IM_PARAMETERS, example_lines

IDS = ("setl_id", "mdtrt_id", "reverses_setl_id")


def figures(output: dict, explanation: bool = True) -> dict:
    """An answer without the ids medledger and the HIS assign (which differ from the example file's)."""
    info = {k: v for k, v in output["setlinfo"].items() if k not in IDS}
    details = [{k: v for k, v in line.items() if explanation or k != "setl_proc_info"} for line in output["setldetail"]]
    return {"setlinfo": info, "setldetail": details}


def expected_records(lines: list[str]) -> tuple[dict, dict, dict]:
    """settle's settlements and reversals by visit_id, and its refusals by event_id."""
    settled, reversed_, refused = {}, {}, {}
    for record in settle_lines(lines, parse_parameters(IM_PARAMETERS)):
        if "rejected" in record:
            refused[record["rejected"]] = record
        elif "settlement_id" in record:
            (reversed_ if record["reverses"] else settled)[record["visit_id"]] = record
    return settled, reversed_, refused


async def drive(stack, lines: list[str]) -> tuple[dict, dict]:
    rows = catalogue_rows()
    visits, reversals = {}, {}
    registered = {}  # the example's visit_id -> (facility, mdtrt_id, setl_id)
    async with Producer(stack) as producer, httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as client:
        for line in lines:
            event = json.loads(line)
            kind, region = event["event_type"], event["region"]
            if kind not in ("visit.submitted", "visit.reversed"):
                producer.add(line, event["event_id"])
                continue
            await producer.flush()
            if kind == "visit.submitted":
                his = His(client, event["facility_id"])
                mdtrt_id, insutype = await register_visit(his, event, rows)
                given = settlement_input(event, mdtrt_id, insutype)
                before = await producer.head()
                presettled = await his.call("2206", given, region)
                assert await producer.head() == before, "2206 wrote to the ledger"
                settled = await his.call("2207", given, region)
                visits[event["event_id"]] = (event["visit_id"], presettled, settled)
                setl_id = settled["output"]["setlinfo"]["setl_id"] if settled["infcode"] == 0 else None
                registered[event["visit_id"]] = (event["facility_id"], mdtrt_id, setl_id)
            else:
                facility, mdtrt_id, setl_id = registered[event["visit_id"]]
                his = His(client, facility)
                given = {"data": {"psn_no": event["member_id"], "setl_id": setl_id, "mdtrt_id": mdtrt_id}}
                reversals[event["event_id"]] = (event["visit_id"], setl_id, await his.call("2208", given, region))
    return visits, reversals


@pytest.mark.parametrize("name", ["ningxia", "weihai", "nanjing", "inner-mongolia"])
def test_each_example_visit_settles_through_the_gateway_as_settle_settles_it(name, stack):
    lines = example_lines(name)
    settled, reversed_, refused = expected_records(lines)
    visits, reversals = asyncio.run(drive(stack, lines))
    assert visits and len(visits) + len(reversals) == sum('"visit.' in line for line in lines)
    for event_id, (visit_id, presettled, answer) in visits.items():
        if event_id in refused:
            reason = refused[event_id]["reason"]
            assert answer["infcode"] == presettled["infcode"] == -1
            assert answer["err_msg"].startswith(f"[{reason}]") and presettled["err_msg"].startswith(f"[{reason}]")
            continue
        assert answer["infcode"] == 0, answer["err_msg"]
        assert presettled["infcode"] == 0, presettled["err_msg"]
        expected = figures(settlement_answer(settled[visit_id]))
        assert figures(answer["output"]) == expected, visit_id
        assert figures(presettled["output"]) == expected, visit_id
        assert presettled["output"]["setlinfo"]["setl_id"] is None
    for _event_id, (visit_id, setl_id, answer) in reversals.items():
        assert answer["infcode"] == 0, answer["err_msg"]
        expected = figures(settlement_answer(reversed_[visit_id]), explanation=False)
        assert figures(answer["output"], explanation=False) == expected, visit_id
        assert answer["output"]["setlinfo"]["reverses_setl_id"] == setl_id
        assert setl_id in answer["output"]["setldetail"][0]["setl_proc_info"]
