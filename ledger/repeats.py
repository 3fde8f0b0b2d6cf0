"""Repeats: what medledger does with input given again, the same way for `ingest`, `serve` and `settle`.

A repeat of an event (the same event id, and the same event: the same bytes, or the same values written another
way, money as "300" and "300.00" say) is acknowledged and not applied twice. A different event under an id already
given is no repeat: it is refused (`event_id_conflict`), and the event held under the id stays as it is; the
refusal is then input like any unreadable input. The same unreadable input again (the same bytes) is acknowledged,
not refused twice.

An event is held under its id as the text it arrived in (what a process has seen itself) or as the canonical
bytes the ledger recorded (what the ledger or its waiting room holds, read in per batch): a repeat in the same text
costs a comparison of strings; only another text is decoded again and compared by value.
"""

from __future__ import annotations

from collections.abc import Iterable

from .chain import canonical, text_digest
from .contract import same_values
from .intake import Incoming, conflicting, decode, same_event


class Repeats:
    def __init__(self) -> None:
        self.arrived: dict[str, str] = {}  # event id -> the text of the event first given it, as it arrived
        self.recorded: dict[str, str] = {}  # event id -> the canonical bytes of the event the ledger holds
        self.refused: set[str] = set()  # digests of unreadable input refused already

    def hold_recorded(self, held: Iterable[tuple[str, str]]) -> None:
        """(event id, canonical bytes) of events the ledger holds; the first of an id stands."""
        for event_id, payload in held:
            self.recorded.setdefault(event_id, payload)

    def is_repeat(self, item: Incoming, elsewhere: str | None = None) -> bool:
        """Whether `item` repeats what was given before (then it is acknowledged and goes no further). Otherwise
        it is new, and held (an event) or counted refused (unreadable input); an event under an id already given
        to a different event becomes refused input first. `elsewhere`: the text an event under its id arrived in
        where this holder did not see it (another worker of `ledger.spread`)."""
        event = item.event
        if event is not None:
            event_id = event.event_id
            arrived = self.arrived.get(event_id, elsewhere)
            if arrived is not None:
                if arrived == item.raw:
                    return True
                earlier = decode(arrived, "held", event_id).event
                if earlier is not None and same_values(earlier, event):
                    return True
                conflicting(item, canonical(earlier))
            elif self.recorded and (recorded := self.recorded.get(event_id)) is not None:
                if same_event(recorded, item):
                    return True
                conflicting(item, recorded)
            else:
                self.arrived[event_id] = item.raw
                return False
        key = text_digest(item.raw)
        if key in self.refused:
            return True
        self.refused.add(key)
        return False

    def held_text(self, event_id: str) -> str | None:
        """The text the event held under `event_id` arrived in, if this holder saw it arrive."""
        return self.arrived.get(event_id)
