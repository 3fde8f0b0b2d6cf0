"""Members of a test's own, and visits registered for them, on a running stack."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from tests.gateway.flow import Producer
from tests.gateway.his import His, ok

NANJING_HOSPITAL = "H32010200011"  # 320100, tier 3A general hospital
NINGXIA_HOSPITAL = "H64010400021"  # 640000, tier 3A general hospital
WEIHAI_HOSPITAL = "H37100200015"  # 371000, tier 3A general hospital


def member_id(region: str) -> str:
    return f"{region}T{uuid.uuid4().hex[:12].upper()}"


def enrolment(region: str, member: str, effective: str, designated: list[str] | None = None) -> str:
    event = {
        "event_id": f"t-{uuid.uuid4().hex}",
        "event_type": "member.enrolled",
        "schema_version": 1,
        "occurred_at": f"{effective}T09:00:00+08:00",
        "region": region,
        "member_id": member,
        "insurance_type": "employee",
        "person_type": "in_service",
        "birth_date": "1980-05-17",
        "effective_date": effective,
        "contribution_base": "6500.00",
    }
    if designated is not None:
        event["designated_facilities"] = designated
    return json.dumps(event)


async def enrol(stack, *lines: str) -> None:
    async with Producer(stack) as producer:
        for line in lines:
            producer.add(line, json.loads(line)["event_id"])
        await producer.flush()


async def registered(
    his: His, region: str, member: str, when: str, fees=(("FA0101", "1", "300.00"),), batch: str = "1"
) -> str:
    """2201, 2203 (general outpatient) and 2204 of a visit at `when` (yyyy-MM-dd HH:mm:ss); its mdtrt_id."""
    mdtrt_id = ok(await his.call("2201", {"data": {"psn_no": member, "insutype": "310", "begntime": when}}, region))[
        "data"
    ]["mdtrt_id"]
    ok(await his.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": member, "med_type": "11"}}, region))
    await upload(his, region, member, mdtrt_id, fees, batch)
    return mdtrt_id


async def upload(his: His, region: str, member: str, mdtrt_id: str, fees, batch: str = "1") -> dict:
    """2204 of `fees`: (med_list_codg, cnt, pric), or with a fourth det_item_fee_sumamt other than cnt × pric."""
    details = []
    for number, fee in enumerate(fees, start=1):
        code, cnt, pric = fee[:3]
        total = fee[3] if len(fee) > 3 else str((Decimal(cnt) * Decimal(pric)).quantize(Decimal("0.01")))
        details.append(
            {
                "feedetl_sn": f"{batch}-{number:03d}",
                "mdtrt_id": mdtrt_id,
                "psn_no": member,
                "chrg_bchno": batch,
                "med_list_codg": code,
                "cnt": cnt,
                "pric": pric,
                "det_item_fee_sumamt": total,
            }
        )
    return await his.call("2204", {"feedetail": details}, region)


def settling(member: str, mdtrt_id: str, total: str, account: bool = False) -> dict:
    return {
        "data": {
            "psn_no": member,
            "mdtrt_id": mdtrt_id,
            "med_type": "11",
            "medfee_sumamt": total,
            "acct_used_flag": "1" if account else "0",
            "insutype": "310",
        }
    }
