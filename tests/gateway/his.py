"""A HIS as the national platform knows it, for the tests: plain HTTP and JSON with the x-tif signature headers,
and the messages that take one example visit through registration to settlement."""

from __future__ import annotations

import csv
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from gateway.signature import sign

REFERENCE = Path(__file__).resolve().parents[2] / "examples/national"
PATH = "/fsi/api/rsfComIfsService/callService"


def token_of(code: str) -> str:
    return f"test-token-{code}-0123456789"


def keys_file(path: Path, codes) -> Path:
    path.write_text("".join(f'[facilities."{code}"]\ntoken = "{token_of(code)}"\n\n' for code in codes))
    return path


def facility_codes() -> list[str]:
    with open(REFERENCE / "facilities.csv", encoding="utf-8") as handle:
        return [row["fixmedins_code"] for row in csv.DictReader(handle)]


class His:
    def __init__(self, client: httpx.AsyncClient, code: str, token: str | None = None):
        self.client, self.code = client, code
        self.token = token or token_of(code)

    def headers(self, nonce: str | None = None, timestamp: int | None = None, token: str | None = None) -> dict:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or uuid.uuid4().hex
        return {
            "x-tif-paasid": self.code,
            "x-tif-timestamp": stamp,
            "x-tif-nonce": nonce,
            "x-tif-signature": sign(stamp, token or self.token, nonce),
        }

    def envelope(self, infno: str, given: dict, region: str | None, msgid: str | None = None) -> dict:
        return {
            "infno": infno,
            "msgid": msgid or f"{self.code}{uuid.uuid4().hex[:18]}",
            "mdtrtarea_admvs": region,
            "insuplc_admdvs": region,
            "recer_sys_code": "MEDLEDGER",
            "infver": "V1.0",
            "opter_type": "1",
            "opter": "0001",
            "opter_name": "收费员",
            "inf_time": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "fixmedins_code": self.code,
            "fixmedins_name": "",
            "sign_no": "",
            "input": given,
        }

    async def post(self, body, headers: dict | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        return await self.client.post(
            PATH, content=content, headers={"content-type": "application/json", **(headers or self.headers())}
        )

    async def call(self, infno: str, given: dict, region: str | None, msgid: str | None = None) -> dict:
        response = await self.post(self.envelope(infno, given, region, msgid))
        return response.json()


def ok(answer: dict) -> dict:
    assert answer["infcode"] == 0, answer["err_msg"]
    return answer["output"]


@dataclass(frozen=True)
class Row:
    code: str
    category: str
    item_class: str
    prop: Decimal
    cap: Decimal | None


def catalogue_rows() -> list[Row]:
    with open(REFERENCE / "catalogue.csv", encoding="utf-8") as handle:
        return [
            Row(
                r["med_list_codg"],
                r["category"],
                r["chrgitm_lv"],
                Decimal(r["selfpay_prop"] or "0"),
                Decimal(r["pric_uplmt_amt"]) if r["pric_uplmt_amt"] else None,
            )
            for r in csv.DictReader(handle)
        ]


def fee_detail(item: dict, rows: list[Row]) -> tuple[str, Decimal, Decimal]:
    """(med_list_codg, cnt, pric) under which the catalogue gives the example item's own figures."""
    amount, ooc, psp = (Decimal(item[k]) for k in ("amount", "out_of_catalog_amount", "pre_self_pay_amount"))
    for row in rows:
        if row.code != item["item_code"] and not row.code.startswith(item["item_code"] + "-"):
            continue
        if row.category != item["category"]:
            continue
        if ooc == amount and amount > 0:
            if row.item_class == "03":
                return row.code, Decimal(1), amount
            continue
        if row.item_class != ("02" if psp else "01") or (psp and row.prop != (psp / (amount - ooc)).quantize(row.prop)):
            continue
        if ooc:
            if row.cap == amount - ooc:
                return row.code, Decimal(1), amount
            continue
        for count in range(1, 101):
            pric = amount / count
            if pric == pric.quantize(Decimal("0.01")) and (row.cap is None or pric <= row.cap):
                return row.code, Decimal(count), pric.quantize(Decimal("0.01"))
    raise AssertionError(f"no catalogue row gives {item}")


def prescriber(prescription: dict, region: str) -> str:
    from gateway.visit import within

    with open(REFERENCE / "facilities.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if (
                int(row["level"]) == prescription["facility_level"]
                and (row["grade"] or None) == prescription["facility_grade"]
                and row["kind"] == prescription["facility_kind"]
                and within(row["admdvs"], region)
            ):
                return row["fixmedins_code"]
    raise AssertionError(f"no facility prescribes as {prescription}")


def begntime(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def national_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


async def register_visit(his: His, event: dict, rows: list[Row]) -> tuple[str, str]:
    """1101, 2201, 2203 and 2204 (with 2501 / 2401 first where the visit needs them) for an example visit; its
    mdtrt_id and the member's insutype."""
    region, psn_no = event["region"], event["member_id"]
    at = begntime(event)
    if event["out_of_area"] in ("long_term", "temporary_filed"):
        kind = "1" if event["out_of_area"] == "long_term" else "2"
        given = {"psn_no": psn_no, "fil_type": kind, "begndate": str(at.date() - timedelta(days=1)),
                 "enddate": str(at.date() + timedelta(days=30))}  # fmt: skip
        ok(await his.call("2501", {"data": given}, region))
    if event["inpatient_period"]:
        admitted = national_time(at - timedelta(days=1))
        ok(await his.call("2401", {"mdtrtinfo": {"psn_no": psn_no, "insutype": "310", "begntime": admitted}}, region))
    insutype = ok(await his.call("1101", {"data": {"psn_no": psn_no}}, region))["insuinfo"][0]["insutype"]
    registered = ok(
        await his.call(
            "2201", {"data": {"psn_no": psn_no, "insutype": insutype, "begntime": national_time(at)}}, region
        )
    )
    mdtrt_id = registered["data"]["mdtrt_id"]
    info = {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "med_type": "14" if event["visit_kind"] == "chronic" else "11"}
    if event["visit_kind"] == "chronic":
        info["dise_codg"] = event["disease_code"]
    if event["prescription"]:
        info["prsc_fixmedins_code"] = prescriber(event["prescription"], region)
    ok(await his.call("2203", {"mdtrtinfo": info, "diseinfo": []}, region))
    details = []
    for number, item in enumerate(event["items"], start=1):
        code, cnt, pric = fee_detail(item, rows)
        details.append(
            {
                "feedetl_sn": f"{number:04d}",
                "mdtrt_id": mdtrt_id,
                "psn_no": psn_no,
                "chrg_bchno": "1",
                "med_list_codg": code,
                "det_item_fee_sumamt": item["amount"],
                "cnt": str(cnt),
                "pric": str(pric),
                "fee_ocur_time": national_time(at),
            }
        )
    priced = ok(await his.call("2204", {"feedetail": details}, region))["result"]
    for line, item in zip(priced, event["items"]):
        outside = Decimal(line["fulamt_ownpay_amt"]) + Decimal(line["overlmt_amt"])
        assert outside == Decimal(item["out_of_catalog_amount"])
        assert Decimal(line["preselfpay_amt"]) == Decimal(item["pre_self_pay_amount"])
    return mdtrt_id, insutype


def settlement_input(event: dict, mdtrt_id: str, insutype: str) -> dict:
    data = {
        "psn_no": event["member_id"],
        "mdtrt_id": mdtrt_id,
        "med_type": "14" if event["visit_kind"] == "chronic" else "11",
        "medfee_sumamt": str(sum(Decimal(item["amount"]) for item in event["items"])),
        "acct_used_flag": "1" if event["pay_with_account"] else "0",
        "insutype": insutype,
        "chrg_bchno": "1",
    }
    if event["account_payer_id"]:
        data["acct_payer_psn_no"] = event["account_payer_id"]
    return {"data": data}
