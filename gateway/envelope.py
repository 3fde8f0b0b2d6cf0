"""The platform's message envelope and its answer."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

from ledger.contract import POLICY_TZ

from .errors import Refused, bad_field
from .values import moment, text

MAX_BODY = 1_000_000  # bytes


@dataclass(frozen=True)
class Envelope:
    infno: str
    msgid: str
    fixmedins_code: str
    insuplc_admdvs: str | None
    mdtrtarea_admvs: str | None
    inf_time: datetime
    opter: str | None
    input: dict


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    data = {}
    for key, value in pairs:
        if key in data:
            raise bad_field(key, "is given twice")
        data[key] = value
    return data


def _no_constant(name: str) -> NoReturn:
    raise bad_field("body", f"{name} is not JSON")


def parse_body(body: bytes) -> dict:
    """The JSON body, numbers with a fraction as exact decimals; a key given twice is refused."""
    if len(body) > MAX_BODY:
        raise bad_field("body", f"is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(
            body.decode("utf-8"),
            parse_float=Decimal,
            parse_constant=_no_constant,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, ValueError) as error:
        if isinstance(error, Refused):
            raise
        raise bad_field("body", f"is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise bad_field("body", "must be a JSON object")
    return data


def envelope_of(data: dict) -> Envelope:
    where = "envelope"
    infno = text(data, "infno", where, limit=8)
    msgid = text(data, "msgid", where, limit=64)
    fixmedins = text(data, "fixmedins_code", where, limit=40)
    given = data.get("input")
    if not isinstance(given, dict):
        raise bad_field("input", "must be an object")
    return Envelope(
        infno,
        msgid,
        fixmedins,
        text(data, "insuplc_admdvs", where, required=False, limit=12),
        text(data, "mdtrtarea_admvs", where, required=False, limit=12),
        moment(data, "inf_time", where),
        text(data, "opter", where, required=False),
        given,
    )


# Where the national messages name the member: input.data, input.mdtrtinfo, input.dscginfo, input.feedetail[].
MEMBER_SECTIONS = ("data", "mdtrtinfo", "dscginfo", "feedetail")


def member_named(given: dict) -> str | None:
    """The psn_no a message names (its first, for a list of details), as given; None when it names none."""
    for name in MEMBER_SECTIONS:
        section = given.get(name)
        if isinstance(section, list):
            section = section[0] if section else None
        if isinstance(section, dict) and isinstance(section.get("psn_no"), str):
            return section["psn_no"][:64]
    return None


_answers = itertools.count(1)


def platform_time(at: datetime) -> str:
    """yyyyMMddHHmmssSSS, Beijing time, as the platform stamps its answers."""
    local = at.astimezone(POLICY_TZ)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def answer(
    received: datetime, output: dict | None = None, refused: Refused | None = None, region: str | None = None
) -> dict:
    now = datetime.now(POLICY_TZ)
    return {
        "infcode": 0 if refused is None else -1,
        "inf_refmsgid": f"{region or '000000'}{platform_time(now)}{next(_answers) % 1_000_000:06d}",
        "refmsg_time": platform_time(received),
        "respond_time": platform_time(now),
        "err_msg": None if refused is None else f"[{refused.answered[0]}] {refused.answered[1]}",
        "output": output or {},
    }
