"""Settlement at the counter: pre-settlement (2206), settlement (2207), its reversal (2208) and the settlement
query (5203).

2206 settles the registered visit against the member's current state in the ledger and writes nothing. 2207 sends
the very same visit to the event topic as one `visit.submitted` (its event_id derived from the facility and the
msgid: a retried message is the same event, applied once) and waits, bounded, for the ledger's settlement of it.
A visit the ledger refuses is answered -1 with its reason, and the refusal is kept in the ledger's rejections."""

from __future__ import annotations

import asyncio
import logging

from ledger.contract import InvalidEvent, decode_line
from policies.rejection import Rejected

from .core import Gateway
from .counter import Registration, derived_id
from .envelope import Envelope
from .errors import Refused, bad_field
from .national import settlement_answer
from .registration import enrolled, registered
from .values import flag, money, section, text
from .visit import reversal_event, visit_event

log = logging.getLogger("medledger.gateway")


def event_id_of(env: Envelope) -> str:
    """The contract event of a message: the same for a retried message (same facility, transaction and msgid), and
    another for a 2207 and a 2208 that share a msgid."""
    return derived_id("his-", f"{env.fixmedins_code}\n{env.infno}", env.msgid, length=40).lower()


def reused(env: Envelope, what: str) -> Refused:
    return Refused(
        "msgid_reused",
        f"envelope.msgid: {env.msgid} was already sent by {env.fixmedins_code} for {what}; give each message a "
        "msgid of its own",
    )


def _settlement_input(gw: Gateway, env: Envelope) -> tuple[Registration, dict, bytes]:
    where = "input.data"
    data = section(env.input, "data", "input")
    registration = registered(gw, env, data, where)
    insutype = text(data, "insutype", where, required=False)
    if insutype is not None and insutype != registration.insutype:
        raise bad_field(f"{where}.insutype", f"{insutype} is not the visit's registered {registration.insutype}")
    payer = text(data, "acct_payer_psn_no", where, required=False, limit=40)
    line = visit_event(
        event_id_of(env),
        registration,
        gw.facilities.current,
        gw.counter,
        flag(data, "acct_used_flag", where),
        payer,
        money(data, "medfee_sumamt", where),
    )
    gw.permission.check(line)  # what the ledger would refuse from the gateway's producer: alike in 2206 and 2207
    return registration, data, line


async def presettle(gw: Gateway, env: Envelope) -> dict:
    """2206: what 2207 would answer now, the ledger untouched (a member the ledger does not know is refused by
    the pre-settlement itself)."""
    _registration, _data, line = _settlement_input(gw, env)
    try:
        record = await gw.enquiry.presettle(decode_line(line))
    except InvalidEvent as error:
        raise Refused(error.reason, str(error)) from None
    except Rejected as rejection:
        raise Refused(rejection.reason, rejection.detail) from None
    return settlement_answer(record, settled=False)


async def _outcome(gw: Gateway, event_id: str, line: bytes, decided: tuple | None) -> dict:
    """Publish `line` unless the ledger already `decided` its event, then wait for the ledger's decision. What the
    ledger decided under the event id may be another message's (a msgid used again): the caller checks the record
    is the one its message asks for."""
    if decided is None:
        try:
            await asyncio.wait_for(gw.publisher.publish(line), gw.settings.wait_seconds)
        except Exception as error:  # the broker away or slow: whether it holds the event is unknown, so a resend
            # of the same msgid is the way on (the same event: applied once)
            log.warning("event not published", extra={"event_id": event_id, "error": str(error)})
            raise Refused(
                "settlement_unavailable",
                "the event topic cannot be reached; send the message again with the same msgid",
            ) from None
        decided = await gw.outcomes.wait(event_id, gw.settings.wait_seconds)
    if decided is None:
        raise Refused(
            "settlement_pending",
            f"the ledger has not settled the message within {gw.settings.wait_seconds:g} s; it will be settled once: "
            "ask with 5203 or send the message again with the same msgid",
        )
    kind, record = decided
    if kind == "refused":
        raise Refused(record["reason"], record["detail"])
    if kind == "parked":
        raise Refused("member_not_enrolled", "the member is not enrolled yet; the ledger keeps the event waiting")
    return record


async def settle(gw: Gateway, env: Envelope) -> dict:
    """2207: the visit through the event topic into the ledger, answered with its settlement."""
    registration, _data, line = _settlement_input(gw, env)
    event_id = event_id_of(env)
    registration.settling = event_id  # from the moment its details are read into the event
    try:
        decided = await gw.outcomes.now(event_id)
        if decided is None:
            # A member unknown to the ledger would wait for an enrolment: refused here, nothing published.
            await enrolled(gw, registration.region, registration.psn_no, "input.data")
        record = await _outcome(gw, event_id, line, decided)
        # The same facility, transaction and msgid settled another visit (or a reversal): not this message's.
        if record.get("visit_id") != registration.mdtrt_id or record.get("reverses"):
            raise reused(env, f"the settlement {record.get('settlement_id')} of another visit")
    finally:
        if registration.settling == event_id:
            registration.settling = None
    registration.settled = record["settlement_id"]
    return settlement_answer(record)


async def _settled_visit(gw: Gateway, env: Envelope, where: str) -> tuple[dict, dict | None]:
    region = gw.region(env)
    data = section(env.input, "data", "input")
    psn_no = text(data, "psn_no", where)
    setl_id = text(data, "setl_id", where, required=False)
    mdtrt_id = text(data, "mdtrt_id", where, required=False)
    if setl_id is None and mdtrt_id is None:
        raise bad_field(f"{where}.setl_id", "setl_id or mdtrt_id is required")
    found = await gw.enquiry.visit(region, visit_id=mdtrt_id, settlement_id=setl_id)
    if found is None or found[1] != env.fixmedins_code or found[0]["member_id"] != psn_no:
        raise Refused("unknown_settlement", f"{where}: no settlement of {psn_no} at {env.fixmedins_code} by that id")
    settlement, _facility, reversal = found
    if mdtrt_id is not None and settlement["visit_id"] != mdtrt_id:
        raise bad_field(f"{where}.mdtrt_id", f"{mdtrt_id} is not the visit of settlement {setl_id}")
    return settlement, reversal


async def reverse(gw: Gateway, env: Envelope) -> dict:
    """2208: the settlement reversed through the ledger (`visit.reversed`), answered with the reversal."""
    settlement, _reversal = await _settled_visit(gw, env, "input.data")
    line = reversal_event(
        event_id_of(env),
        settlement["region"],
        settlement["member_id"],
        settlement["visit_id"],
        env.inf_time.isoformat(),
        f"2208 冲正 by {env.fixmedins_code}",
    )
    event_id = event_id_of(env)
    record = await _outcome(gw, event_id, line, await gw.outcomes.now(event_id))
    # The same facility, transaction and msgid reversed another settlement: not this message's.
    if record.get("reverses") != settlement["settlement_id"]:
        raise reused(env, f"{record.get('settlement_id')}, which does not reverse {settlement['settlement_id']}")
    return settlement_answer(record)


async def query(gw: Gateway, env: Envelope) -> dict:
    """5203: a settlement by setl_id or mdtrt_id, with its reversal if it was reversed."""
    settlement, reversal = await _settled_visit(gw, env, "input.data")
    answer = settlement_answer(settlement)
    answer["revsinfo"] = None if reversal is None else settlement_answer(reversal)["setlinfo"]
    return answer
