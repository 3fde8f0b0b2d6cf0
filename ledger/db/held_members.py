"""Member states a replay holds in its own memory between batches, rather than writing each batch's to its
member_state table and reading them back for the next.

A replay (`ledger.replay`) settles the whole ledger batch after batch into a member_state table of its own that
starts empty (the shadow of a verify or a what-if, or the live table a rebuild has just emptied). Written through
the table, every member a batch touches costs the client an encoding of its state (`codec.state_json`, some 4 µs)
and the server an upsert of the row (some 900 bytes of JSON, staged by COPY and merged); at the member's next
event, in a later batch, the row is read back and parsed into the engine's state again (some 15 µs): on a ledger
of ten events a member, about one write and one read an event. Held here, a batch takes its members' states from
memory as the batch before left them, and the table receives each member's state once, when something is about to
read the table: the member_year rows written from the final states, the comparison of the projections, and, once
some members were let go, a year close walking its region's members (while all are held, it walks the held ones).

The held states are the engine's own objects, as a batch's `BatchRows.touched` leaves them: a batch's Book takes
them, and the engine changes a member only by an event it accepts, which touches the member (its own, a payer
charged or refunded, one a year close evaluates), so the batch leaves it held again, changed. A handler that changed
a member without touching it would lose that change through the table and keep it here: the batch's rows name
every member changed (`BatchRows.touched`), which ingest relies on too, carrying members from batch to batch alike
(`ledger.carry`).

Memory is bounded (`HELD_MEMBERS`): past it, the members least recently written are let go, and those not yet in
the table are written with the batch that lets them go. A member no longer held is then read from the table as
before; while nothing has been let go the table holds nothing the session does not, and a member not held has no
state yet (a member the batch enrols), so nothing is read for it at all.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable

from policies.book import Book
from policies.member import MemberState

from ..codec import state_json

# Members held at most, each about 3.4 kB as the engine's objects (a state of some 900 bytes as text): some
# 100 MB. A replay splits the regions over processes (`replay --workers`), each holding its own.
# `MEDLEDGER_REPLAY_MEMBERS` sets another bound (0: none held, every state written with its batch).
HELD_MEMBERS = 30_000
SETTING = "MEDLEDGER_REPLAY_MEMBERS"


def held_setting() -> int:
    """The members a replay process holds at most: `MEDLEDGER_REPLAY_MEMBERS`, or `HELD_MEMBERS`."""
    given = os.environ.get(SETTING, "").strip()
    if not given:
        return HELD_MEMBERS
    try:
        most = int(given)
    except ValueError:
        most = -1
    if most < 0:
        raise ValueError(f"{SETTING} must be a whole number of members, 0 or more; it is {given!r}")
    return most


Key = tuple[str, str]
Row = tuple  # (region, member_id, state text, last_seq, params_digest): member_state's columns


class HeldMembers:
    """The member states of a session whose member_state table started empty, those most recently written
    staying when some must go."""

    def __init__(self, most: int | None = None) -> None:
        """`most`: members held at most (by default `held_setting()`)."""
        most = held_setting() if most is None else most
        if most < 0:
            raise ValueError(f"the members held cannot be fewer than none, got {most}")
        self.most = most
        # (member, last_seq, params_digest), in the order last written: the first is the next let go. An
        # OrderedDict: a plain dict's first entry, once many before it were removed, is found by stepping over
        # their empty slots, and letting members go was a thirtieth of a verify's CPU.
        self._held: OrderedDict[Key, tuple[MemberState, int, str]] = OrderedDict()
        self._unwritten: set[Key] = set()  # held, and not yet in the table as held
        # Every state the table holds is held here too: nothing has been let go. A member not held has none yet.
        self.complete = True

    def __len__(self) -> int:
        return len(self._held)

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)

    def take(self, book: Book, keys: Iterable[Key], loaded: dict | None = None) -> set[Key]:
        """The held states of `keys` put in `book` (with their digests in `loaded`); the keys left to read from
        the table: none while the table holds nothing that is not held."""
        held = self._held
        left = set()
        for key in keys:
            found = held.get(key)
            if found is not None:
                book.members[key] = found[0]
                if loaded is not None:
                    loaded[key] = found[2]
            elif not self.complete:
                left.add(key)
        return left

    def keep(self, touched: Iterable[tuple[Key, MemberState, int]], params_digest: str) -> list[Row]:
        """Hold these members, as a batch leaves them (key, state, last_seq), settled under `params_digest`; the
        rows of those let go to stay within `most` that are not yet in the table, for the batch to write
        (`unwritten` no longer counts them)."""
        held, unwritten = self._held, self._unwritten
        for key, member, last_seq in touched:
            held[key] = (member, last_seq, params_digest)
            held.move_to_end(key)
            unwritten.add(key)
        let_go = []
        while len(held) > self.most:
            key, (member, last_seq, digest) = held.popitem(last=False)
            self.complete = False
            if key in unwritten:
                unwritten.discard(key)
                let_go.append(_row(key, member, last_seq, digest))
        return sorted(let_go)

    def get(self, key: Key) -> tuple[MemberState, str] | None:
        """A held member's state and the digest of its last event's parameters."""
        found = self._held.get(key)
        return None if found is None else (found[0], found[2])

    def of_region(self, region: str) -> list[MemberState]:
        """The held members of `region`, in member_id order by code point: as the table's `COLLATE "C"` orders them
        in a UTF-8 database (the order decides only which members a year close evaluates in one chunk)."""
        return [self._held[key][0] for key in sorted(key for key in self._held if key[0] == region)]

    def members(self) -> list[tuple[MemberState, str]]:
        """Every member held, with the digest of its last event's parameters, in key order."""
        return [(self._held[key][0], self._held[key][2]) for key in sorted(self._held)]

    def to_write(self) -> list[Row]:
        """The rows of the held states not yet in the table, in key order, counted as written from now on (they
        stay held)."""
        rows = [_row(key, *self._held[key]) for key in sorted(self._unwritten)]
        self._unwritten.clear()
        return rows


def _row(key: Key, member: MemberState, last_seq: int, params_digest: str) -> Row:
    """As `BatchRows.state_rows` writes it, with the digest."""
    return (*key, state_json(member).decode(), last_seq, params_digest)
