"""Whose visit a reversal names: a hospital or pharmacy reverses only visits settled at its own facilities.

A `visit.reversed` carries the visit's id and no facility, and a reversal negates the fund's payment and pays the
account back. So when its producer is restricted to facilities (`ledger.authority`), the visit it names is looked
up where the batch settles it: the book the batch settles against holds the visit as settled by then, in the
ledger, in the batch carried from or earlier in this very batch, and the facility is that of the event that settled
it. A reversal of a visit settled elsewhere, or of none settled yet (it would wait for an enrolment, and whatever
settled under that id meanwhile could be another facility's), is refused as `unauthorized` input: kept, with no
ledger position, never applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

import orjson

from policies.book import Book

from .authority import Authority
from .carry import Carry
from .intake import Incoming
from .recorder import SettlingReads

if TYPE_CHECKING:
    from .contract.visit import VisitReversed, VisitSubmitted


class VisitOwners:
    """The facility of each visit the batch's facility-bound reversals name, by the id of the event it settled
    under: this run's own visit events, the batch carried from, then the ledger."""

    def __init__(self, authority: Authority, carry: Carry | None = None):
        self.authority, self.carry = authority, carry
        self.facilities: dict[str, str | None] = {}  # event id of a visit -> its facility_id

    async def load(self, ledger: SettlingReads, items: Iterable[Incoming], book: Book) -> None:
        """Learn the facilities of the visits that `items` (a segment and what it releases) may settle or name."""
        bound: list[VisitReversed] = []
        for item in items:
            event = item.event
            if event is None:
                continue
            # asked of its type, not its class: the event may be the fast decoder's Struct of it, which reads alike
            if event.event_type == "visit.submitted":
                self.facilities[event.event_id] = str(cast("VisitSubmitted", event).facility_id)
            elif event.event_type == "visit.reversed" and self.authority.visit_bound(item) is not None:
                bound.append(cast("VisitReversed", event))
        wanted = []
        for event in bound:
            settled = book.visits.get((event.region, event.visit_id))
            if settled is None or settled.event_id in self.facilities:
                continue
            payload = self.carry.payloads.get(settled.event_id) if self.carry is not None else None
            if payload is not None:
                self.facilities[settled.event_id] = orjson.loads(payload).get("facility_id")
            else:
                wanted.append(settled.event_id)
        if wanted:
            self.facilities.update(await ledger.visit_facilities(wanted))

    def problem(self, item: Incoming, book: Book) -> str | None:
        """Why `item` may not be applied now, as `book` stands, or None when it may (or is not facility-bound)."""
        producer, event = self.authority.visit_bound(item), item.event
        if producer is None or event is None or event.event_type != "visit.reversed":  # none for undecoded input
            return None
        event = cast("VisitReversed", event)
        settled = book.visits.get((event.region, event.visit_id))
        facility = None if settled is None else self.facilities.get(settled.event_id)
        if settled is not None and facility is None:
            facility = "unknown"  # a settled visit whose event names no facility is no facility's own
        return producer.visit_problem(event, facility)
