"""The counter's transactions before settlement: person information (1101), registration (2201), visit
information (2203), fee details and their cancellation (2204, 2205), admission and discharge (2401, 2402), the
out-of-area filing and its cancellation (2501, 2502). None writes to the ledger."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from ledger.contract import POLICY_TZ
from policies.member import MemberState
from policies.settling import PSN_TYPES

from .core import Gateway
from .counter import CHRONIC, MED_TYPES, Filing, Registration, Stay, derived_id
from .envelope import Envelope
from .errors import Refused, bad_field
from .fees import price
from .values import day, moment, rows, section, text

# psn_insu_stas: 1 正常参保, 4 终止参保
INSURED, ENDED = "1", "4"
INSUTYPES = {"employee": "310", "resident": "390"}
# fil_type (medledger's reading of the filing): 1 异地长期居住, 2 临时外出就医
FILING_KINDS = {"1": "long_term", "2": "temporary_filed"}


async def enrolled(gw: Gateway, region: str, psn_no: str, where: str) -> MemberState:
    member = await gw.enquiry.member(region, psn_no)
    if member is None:
        raise Refused("member_not_enrolled", f"{where}.psn_no: member {psn_no} is not enrolled in region {region}")
    return member


def known_facility(gw: Gateway, env: Envelope) -> None:
    """The caller must be a facility of facilities.csv (a key alone does not make one)."""
    if env.fixmedins_code not in gw.facilities.current:
        raise Refused("unknown_facility", f"fixmedins_code: {env.fixmedins_code} is not in facilities.csv")


def registered(gw: Gateway, env: Envelope, data: dict, where: str) -> Registration:
    """The caller's registered visit that `data` names by mdtrt_id, for the member it names by psn_no."""
    return gw.counter.visit(env.fixmedins_code, text(data, "mdtrt_id", where), text(data, "psn_no", where), where)


async def person(gw: Gateway, env: Envelope) -> dict:
    """1101: the member as the projections hold them."""
    region = gw.region(env)
    data = section(env.input, "data", "input")
    psn_no = text(data, "psn_no", "input.data")
    member = await enrolled(gw, region, psn_no, "input.data")
    today = datetime.now(POLICY_TZ).date()
    status = member.statuses[-1]
    age = (
        today.year
        - member.birth_date.year
        - ((today.month, today.day) < (member.birth_date.month, member.birth_date.day))
    )
    return {
        "baseinfo": {"psn_no": member.member_id, "brdy": member.birth_date.isoformat(), "age": age},
        "insuinfo": [
            {
                "insutype": INSUTYPES[status.insurance_type],
                "psn_type": PSN_TYPES[status.person_type],
                "balc": str(member.balance.quantize(Decimal("0.01"))),
                "psn_insu_stas": ENDED if member.terminated_on is not None else INSURED,
                "psn_insu_date": member.enrolled_on.isoformat(),
                "paus_insu_date": None if member.terminated_on is None else member.terminated_on.isoformat(),
                "insuplc_admdvs": member.region,
            }
        ],
        "idetinfo": [],
    }


async def register(gw: Gateway, env: Envelope) -> dict:
    """2201: a visit registered; its mdtrt_id is derived from the message, so a retry registers nothing new."""
    region = gw.region(env)
    data = section(env.input, "data", "input")
    where = "input.data"
    psn_no = text(data, "psn_no", where)
    insutype = text(data, "insutype", where)
    if insutype not in INSUTYPES.values():
        raise bad_field(f"{where}.insutype", f"must be 310 or 390, got {insutype}")
    begntime = moment(data, "begntime", where)
    known_facility(gw, env)
    member = await enrolled(gw, region, psn_no, where)
    on = begntime.date()
    insured = INSUTYPES[member.status_on(on).insurance_type]
    if insutype != insured:
        raise bad_field(f"{where}.insutype", f"{insutype} is not the member's insurance on {on} ({insured})")
    registration = gw.counter.register(
        Registration(
            derived_id("M", env.fixmedins_code, env.msgid), env.fixmedins_code, region, psn_no, insutype, begntime
        )
    )
    return {
        "data": {
            "mdtrt_id": registration.mdtrt_id,
            "psn_no": psn_no,
            "ipt_otp_no": text(data, "ipt_otp_no", where, required=False),
        }
    }


async def visit_information(gw: Gateway, env: Envelope) -> dict:
    """2203: the visit's medical type (11 general, 14 chronic with its disease, 41 pharmacy purchase)."""
    where = "input.mdtrtinfo"
    info = section(env.input, "mdtrtinfo", "input")
    registration = registered(gw, env, info, where)
    gw.counter.changeable(registration, where)
    med_type = text(info, "med_type", where)
    if med_type not in MED_TYPES:
        raise bad_field(f"{where}.med_type", f"must be one of {', '.join(MED_TYPES)}, got {med_type}")
    disease = text(info, "dise_codg", where, required=med_type == CHRONIC)
    prescriber = text(info, "prsc_fixmedins_code", where, required=False)
    if prescriber is not None and prescriber not in gw.facilities.current:
        raise Refused("unknown_facility", f"{where}.prsc_fixmedins_code: {prescriber} is not in facilities.csv")
    registration.med_type, registration.dise_codg, registration.prescriber = med_type, disease, prescriber
    return {}


async def upload_fees(gw: Gateway, env: Envelope) -> dict:
    """2204: fee details priced against the catalogue; all of the message or none of it is kept."""
    catalogue = gw.catalogue.current
    priced = []
    for index, detail in enumerate(rows(env.input, "feedetail", "input")):
        where = f"input.feedetail[{index}]"
        registration = registered(gw, env, detail, where)
        gw.counter.changeable(registration, where)
        fee = price(detail, catalogue, where)
        held = registration.fees.get(fee.feedetl_sn)
        if held is not None and held != fee:
            raise Refused(
                "invalid_input",
                f"{where}.feedetl_sn: {fee.feedetl_sn} was uploaded with other values; cancel it (2205) first",
            )
        priced.append((registration, text(detail, "chrg_bchno", where, required=False) or "", fee))
    for registration, batch, fee in priced:
        registration.fees[fee.feedetl_sn] = fee
        serials = registration.batches.setdefault(batch, [])
        if fee.feedetl_sn not in serials:
            serials.append(fee.feedetl_sn)
    return {"result": [fee.answer() for _, _, fee in priced]}


async def cancel_fees(gw: Gateway, env: Envelope) -> dict:
    """2205: a charge batch's details withdrawn (chrg_bchno 0000: all of the visit's)."""
    where = "input.data"
    data = section(env.input, "data", "input")
    registration = registered(gw, env, data, where)
    gw.counter.changeable(registration, where)
    batch = text(data, "chrg_bchno", where)
    if batch == "0000":
        registration.fees.clear()
        registration.batches.clear()
        return {}
    serials = registration.batches.pop(batch, None)
    if serials is None:
        raise bad_field(f"{where}.chrg_bchno", f"visit {registration.mdtrt_id} has no charge batch {batch}")
    for serial in serials:
        registration.fees.pop(serial, None)
    return {}


async def admit(gw: Gateway, env: Envelope) -> dict:
    """2401: an admission; while the stay is open, the member's outpatient visits are inpatient-period visits."""
    region = gw.region(env)
    where = "input.mdtrtinfo"
    info = section(env.input, "mdtrtinfo", "input")
    psn_no = text(info, "psn_no", where)
    begin = moment(info, "begntime", where)
    known_facility(gw, env)
    await enrolled(gw, region, psn_no, where)
    mdtrt_id = derived_id("I", env.fixmedins_code, env.msgid)
    gw.counter.stays.setdefault(mdtrt_id, (region, psn_no, Stay(begin, caller=env.fixmedins_code)))
    return {"result": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}}


async def discharge(gw: Gateway, env: Envelope) -> dict:
    """2402: the stay ends at `endtime`."""
    where = "input.dscginfo"
    info = section(env.input, "dscginfo", "input")
    mdtrt_id, psn_no = text(info, "mdtrt_id", where), text(info, "psn_no", where)
    held = gw.counter.stays.get(mdtrt_id)
    # Only the facility that admitted may discharge; another is told no more than of an id never given.
    if held is None or held[1] != psn_no or held[2].caller != env.fixmedins_code:
        raise Refused(
            "unknown_visit", f"{where}.mdtrt_id: {mdtrt_id} is no admission of {psn_no} at {env.fixmedins_code}"
        )
    end = moment(info, "endtime", where)
    if end < held[2].begin:
        raise bad_field(f"{where}.endtime", "is before the admission")
    held[2].end = end
    return {}


async def file_out_of_area(gw: Gateway, env: Envelope) -> dict:
    """2501: an out-of-area filing for the member, from `begndate` to `enddate`."""
    region = gw.region(env)
    where = "input.data"
    data = section(env.input, "data", "input")
    psn_no = text(data, "psn_no", where)
    kind = FILING_KINDS.get(text(data, "fil_type", where) or "")
    if kind is None:
        raise bad_field(f"{where}.fil_type", "must be 1 (long-term residence) or 2 (temporary)")
    begin, end = day(data, "begndate", where), day(data, "enddate", where)
    if end < begin:
        raise bad_field(f"{where}.enddate", "is before begndate")
    known_facility(gw, env)
    await enrolled(gw, region, psn_no, where)
    serial = derived_id("F", env.fixmedins_code, env.msgid)
    filing = Filing(serial, region, psn_no, kind, begin, end, caller=env.fixmedins_code)
    gw.counter.filings.setdefault(serial, filing)
    return {"result": {"trt_dcla_detl_sn": serial}}


async def cancel_filing(gw: Gateway, env: Envelope) -> dict:
    """2502: a filing withdrawn."""
    where = "input.data"
    data = section(env.input, "data", "input")
    serial, psn_no = text(data, "trt_dcla_detl_sn", where), text(data, "psn_no", where)
    filing = gw.counter.filings.get(serial)
    # Only the facility that filed may cancel; another is told no more than of a serial never given.
    if filing is None or filing.psn_no != psn_no or filing.caller != env.fixmedins_code:
        raise bad_field(f"{where}.trt_dcla_detl_sn", f"{serial} is no filing of {psn_no} by {env.fixmedins_code}")
    gw.counter.filings[serial] = replace(filing, cancelled=True)
    return {}
