"""What the counter has told the gateway between registration and settlement: registered visits with their
visit information and fee details, open inpatient stays, out-of-area filings. Held in the gateway's memory: a
visit registered before a restart is registered again (2201) by the HIS; what is settled is in the ledger."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date, datetime

from .errors import Refused
from .fees import Fee

# med_type: 11 普通门诊, 14 门诊慢特病, 41 定点药店购药
GENERAL, CHRONIC, PHARMACY = "11", "14", "41"
MED_TYPES = (GENERAL, CHRONIC, PHARMACY)


def derived_id(prefix: str, caller: str, msgid: str, length: int = 24) -> str:
    """An id that a retried message (same facility, same msgid) gets again, and no other message gets."""
    return prefix + hashlib.sha256(f"{caller}\n{msgid}".encode()).hexdigest()[:length].upper()


@dataclass
class Registration:
    mdtrt_id: str
    caller: str  # fixmedins_code of the facility that registered it
    region: str  # insuplc_admdvs: the scheme the member is insured in
    psn_no: str
    insutype: str
    begntime: datetime
    med_type: str = GENERAL
    dise_codg: str | None = None
    prescriber: str | None = None  # a pharmacy purchase's prescribing facility (medledger's extension)
    fees: dict[str, Fee] = field(default_factory=dict)  # feedetl_sn -> priced detail, in upload order
    batches: dict[str, list[str]] = field(default_factory=dict)  # chrg_bchno -> its feedetl_sn
    settled: str | None = None  # the setl_id once settled: its details can no longer change
    settling: str | None = None  # the event_id of a 2207 in flight: its details cannot change meanwhile either
    registered_at: float = field(default_factory=time.monotonic)


@dataclass
class Stay:
    begin: datetime
    end: datetime | None = None
    caller: str | None = None  # fixmedins_code of the facility that admitted: the only one that may discharge


@dataclass(frozen=True)
class Filing:
    """An out-of-area filing (异地就医备案): `kind` is the contract's out_of_area value it gives."""

    serial: str
    region: str
    psn_no: str
    kind: str  # long_term | temporary_filed
    begin: date
    end: date
    cancelled: bool = False
    caller: str | None = None  # fixmedins_code of the facility that filed it: the only one that may cancel it


# A registration is kept this long (seconds) after it was made: long enough for its settlement and any resend of it;
# what is settled is in the ledger for good.
KEEP = 24 * 3600


class Counter:
    def __init__(self) -> None:
        self.visits: dict[str, Registration] = {}
        self.stays: dict[str, tuple[str, str, Stay]] = {}  # admission mdtrt_id -> (region, psn_no, stay)
        self.filings: dict[str, Filing] = {}

    def register(self, registration: Registration) -> Registration:
        """A retried 2201 (same facility and msgid: same mdtrt_id) gets the registration it made. Registrations
        older than `KEEP` are forgotten (the oldest come first: a dict keeps the order they were made in)."""
        cutoff = registration.registered_at - KEEP
        while self.visits:
            oldest = next(iter(self.visits.values()))
            if oldest.registered_at >= cutoff:
                break
            del self.visits[oldest.mdtrt_id]
        return self.visits.setdefault(registration.mdtrt_id, registration)

    def visit(self, caller: str, mdtrt_id: str, psn_no: str | None, where: str) -> Registration:
        found = self.visits.get(mdtrt_id)
        if found is None or found.caller != caller:
            raise Refused("unknown_visit", f"{where}.mdtrt_id: {mdtrt_id} is not a visit registered by {caller}")
        if psn_no is not None and psn_no != found.psn_no:
            raise Refused("invalid_input", f"{where}.psn_no: {psn_no} is not the member of visit {mdtrt_id}")
        return found

    def changeable(self, registration: Registration, where: str) -> None:
        if registration.settling is not None and registration.settled is None:
            raise Refused(
                "visit_settling",
                f"{where}.mdtrt_id: visit {registration.mdtrt_id} is being settled; its details cannot change",
            )
        if registration.settled is not None:
            raise Refused(
                "visit_settled",
                f"{where}.mdtrt_id: visit {registration.mdtrt_id} is settled ({registration.settled}); its details "
                "cannot change: reverse the settlement (2208) and register the visit again (2201)",
            )

    def in_stay(self, region: str, psn_no: str, moment: datetime) -> bool:
        """Whether the member was an inpatient at `moment` (admitted, not yet discharged)."""
        return any(
            r == region and p == psn_no and stay.begin <= moment and (stay.end is None or moment < stay.end)
            for r, p, stay in self.stays.values()
        )

    def filed(self, region: str, psn_no: str, on: date) -> Filing | None:
        for filing in self.filings.values():
            if filing.region == region and filing.psn_no == psn_no and not filing.cancelled:
                if filing.begin <= on <= filing.end:
                    return filing
        return None
