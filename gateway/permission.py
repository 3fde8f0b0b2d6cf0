"""What the gateway's own producer may send, as the ledger will judge it: the producers file (MEDLEDGER_PRODUCERS,
`ledger.authority`) read by the gateway too, so that 2206 answers what 2207 will (a visit of a facility or region
the producer may not speak for is `unauthorized` in both), and so that a gateway whose producer can send no visit
at all does not start."""

from __future__ import annotations

from ledger.authority import Authority, Producer, ProducersFileError
from ledger.contract import InvalidEvent, decode_line
from ledger.contract.envelope import EventBase

from .errors import Refused

# The events the gateway sends (2207, 2208), and an event id of the shape it gives them (`settlement.event_id_of`).
SENT = ("visit.submitted", "visit.reversed")
SAMPLE_ID = "his-" + "0" * 40


class Permission:
    def __init__(self, authority: Authority | None, producer: str | None):
        """`authority` None (no producers file given): nothing is checked here, the ledger alone judges."""
        self.authority = authority
        self.producer: Producer | None = None
        if authority is None:
            return
        self.producer = authority.producers.get(producer or "")
        if self.producer is None:
            raise ProducersFileError(f"{authority.source}: the gateway's producer {producer} is not in it")
        kinds = self.producer.events
        for kind in SENT:
            if kind not in kinds and kind.split(".", 1)[0] + ".*" not in kinds and "*" not in kinds:
                raise ProducersFileError(f"{authority.source}: producer {producer} may not send {kind}")
        wrong_ids = authority.id_problem(self.producer, SAMPLE_ID)
        if wrong_ids is not None:
            raise ProducersFileError(f"{authority.source}: the gateway's event ids start with 'his-': {wrong_ids}")

    @classmethod
    def load(cls, producers: str | None, producer: str | None) -> Permission:
        return cls(None if producers is None else Authority.load(producers), producer)

    def check(self, line: bytes) -> None:
        """`Refused` as `unauthorized` when the ledger would refuse `line` from the gateway's producer (a line that
        is no valid event is left to be refused as such, by the pre-settlement or by the ledger)."""
        if self.authority is None or self.producer is None:
            return
        try:
            event: EventBase = decode_line(line)
        except InvalidEvent:
            return
        problem = self.producer.may_send(event) or self.authority.id_problem(self.producer, event.event_id)
        if problem is not None:
            raise Refused("unauthorized", f"{problem}; the ledger would refuse the visit, so it is not sent")
