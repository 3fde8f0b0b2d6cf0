"""The parameter set in force, in the hash chain.

Each event names the parameter set it was settled under (`params_digest`), but that column is outside what the
chain hashes. So before the first event a writer settles under a parameter set other than the one last adopted,
it appends an adoption: a ledger row of medledger's own whose canonical bytes are the set's digest and its whole
text. Every event after an adoption, up to the next, must name that set; `replay --verify` checks it. Whoever
repoints an event at another recorded set, or rewrites a set, now breaks either that rule or the chain, and a
head kept outside the database covers the sets as it covers the events.

An adoption's event_id is longer than the 64 characters the contract allows a producer, so it can never be taken
for a producer's event. Each region's stream adopts for itself (`ledger.streams`); an adoption written before
streams has region `*`: it held for every region.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from .chain import text_digest
from .store import NewEvent
from .streams import HISTORY, stream_of

if TYPE_CHECKING:
    from .recorder import AuditSession  # which imports the tables, which import this

ADOPTED = "ledger.parameters_adopted"
EVERY_REGION = "*"
SOURCE = "medledger"


def adoption(seq: int, digest: str, content: str, at: datetime, region: str = EVERY_REGION) -> NewEvent:
    """The adoption of the parameter set `content` (whose sha256 is `digest`) at ledger position `seq`, dated
    `at`: in the stream of `region` (`ledger.streams`), or, as before streams, for every region."""
    payload = orjson.dumps(
        {"content": content, "digest": digest, "event_type": ADOPTED}, option=orjson.OPT_SORT_KEYS
    ).decode()
    return NewEvent(f"medledger:parameters:{digest}:{seq}", ADOPTED, region, None, at, payload, digest, SOURCE)


# Written out, not a parameter, so that the planner may use the partial index on adoptions (`ledger_events_adoptions`).
IS_ADOPTION = f"event_type = '{ADOPTED}'"


def adoption_problem(payload: str, digest: str, recorded: str | None) -> str | None:
    """What is wrong with an adoption row: its bytes must name the set its row names, hold the text whose digest
    that is, and the same text as the parameter set recorded under it."""
    try:
        body = orjson.loads(payload)
        named, content = body["digest"], body["content"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "its bytes are not an adoption of a parameter set"
    if named != digest:
        return f"it adopts {named[:16]} but its row names {digest[:16]}"
    if text_digest(content) != digest:
        return "the text it adopts does not hash to its digest"
    if recorded != content:
        return "the parameter set recorded under its digest is not the text it adopts"
    return None


class Adoptions:
    """The adoptions of a ledger in sequence order, read as far as replay has walked: which set each event had to
    name. Events before the first adoption were recorded before adoptions were kept, and name what they name."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.digests: list[str] = []
        self.through = 0  # read as far as this position

    async def read(self, ledger: AuditSession, through: int) -> None:
        """Read on, through position `through`, from `ledger`."""
        if through <= self.through:
            return
        for seq, digest in await ledger.adoptions_between(self.through, through):
            self.seqs.append(seq)
            self.digests.append(digest)
        self.through = through

    async def read_back(self, ledger: AuditSession, after: int, through: int) -> None:
        """Read the adoptions after position `after`, through `through`, below where it has read on: those of a
        stream walked before, which appended meanwhile."""
        for seq, digest in await ledger.adoptions_between(after, through):
            at = bisect_left(self.seqs, seq)
            if at == len(self.seqs) or self.seqs[at] != seq:
                self.seqs.insert(at, seq)
                self.digests.insert(at, digest)

    def problem(self, seq: int, digest: str) -> str | None:
        """Why the event at `seq`, recorded under `digest`, is not under the set adopted before it in its stream."""
        at = bisect_right(self.seqs, seq) - 1
        if at < 0 or stream_of(self.seqs[at]) != stream_of(seq):
            # the history's first events came before adoptions were kept; a stream adopts before its first event
            return (
                None
                if stream_of(seq) == HISTORY
                else f"recorded under parameter set {digest[:16]}, but its stream adopted none before it"
            )
        if self.digests[at] == digest:
            return None
        adopted, since = self.digests[at][:16], self.seqs[at]
        return f"recorded under parameter set {digest[:16]}, but the chain adopted {adopted} at seq {since}"
