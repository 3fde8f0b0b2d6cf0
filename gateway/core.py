"""The gateway's working parts, opened and closed together: the ledger (read through `Enquiry`, as a role that may
write nothing in it: what the gateway sends goes through the event topic), the event topic, the counter's state,
the reference data, the callers' keys and what the gateway's own producer may send."""

from __future__ import annotations

import time
from collections.abc import Callable

from consumers.settings import Settings
from ledger.enquiry import Enquiry, LedgerReader

from .counter import Counter
from .envelope import Envelope
from .errors import Refused
from .metrics import GatewayMetrics
from .outcomes import Outcomes
from .permission import Permission
from .publisher import EventPublisher
from .reference import parse_catalogue, parse_facilities
from .reloading import Reloading
from .settings import GatewaySettings
from .signature import Signatures, parse_keys


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        kafka: Settings,
        ledger: LedgerReader,
        clock: Callable[[], float] = time.time,
    ):
        self.settings, self.kafka, self.ledger = settings, kafka, ledger
        self.keys = Reloading(settings.keys, parse_keys)
        self.facilities = Reloading(settings.facilities, parse_facilities)
        self.catalogue = Reloading(settings.catalogue, parse_catalogue)
        self.signatures = Signatures(lambda: self.keys.current, clock)
        self.counter = Counter()
        self.metrics = GatewayMetrics()
        self.enquiry = Enquiry(ledger)
        self.outcomes = Outcomes(self.enquiry)
        self.publisher = EventPublisher(kafka)
        # What the ledger will let the gateway's producer send, checked alike for 2206 and 2207.
        self.permission = Permission.load(kafka.producers, kafka.producer)

    async def start(self) -> None:
        await self.ledger.__aenter__()
        await self.publisher.start()
        self.outcomes.start()

    async def stop(self) -> None:
        await self.outcomes.stop()
        await self.publisher.stop()
        await self.ledger.__aexit__(None, None, None)

    def region(self, envelope: Envelope) -> str:
        """The scheme the member is insured in: `insuplc_admdvs`."""
        if not envelope.insuplc_admdvs:
            raise Refused("invalid_input", "envelope.insuplc_admdvs: is required for this transaction")
        return envelope.insuplc_admdvs
