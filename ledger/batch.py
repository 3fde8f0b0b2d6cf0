"""What one batch of events writes: ledger rows, parked events and projection changes, collected in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

from policies.book import Book
from policies.engine import HANDLERS
from policies.member import MemberState
from policies.outputs import IncentiveEvaluation, Movement, Settlement
from policies.registry import PolicyRegistry
from policies.summary import years_of
from projections import member_year
from projections.fund_totals import FundTotals

from .chain import text_digest
from .codec import deltas_to_json, dumps, state_json
from .contract import EventBase
from .contract.fields import MEMBER_ID_MAX
from .db.outbox import REJECTIONS, SETTLEMENTS, key_of
from .intake import Incoming
from .records import national, rejection_wire, settlement_record, shown_payload, wire
from .store import StoredEvent

if TYPE_CHECKING:
    from .contract.account import PaymentRequested

Text = TypeVar("Text", str, str | None, str | int)  # what a refusal's columns and its shown id hold
# The member_year rows a batch writes (`BatchRows.year_rows`).
YearRows = tuple[list[tuple], list[tuple], list[tuple[str, str]]]


# A ledger_movements row: the movement's own fields, its ledger position (`seq`) and its published record
# (`record`), in the table's column order (`db.tables.ledger_movements`, which tests/ledger/test_schema.py holds it
# to: written out here, so that `settle` does not load SQLAlchemy for the names).
MOVEMENT_ROW = (
    "movement_id",
    "seq",
    "region",
    "member_id",
    "kind",
    "purpose",
    "amount",
    "balance_after",
    "policy_id",
    "record",
)


def storable(text: Text) -> Text:
    """Text as PostgreSQL can keep it: a NUL character (valid UTF-8, and what binary input such as a framed Avro
    record starts with) written as the JSON escape \\u0000, which a text column refuses raw."""
    return text.replace("\x00", "\\u0000") if isinstance(text, str) and "\x00" in text else text


def refusal_key(record: dict) -> str | None:
    """A refusal's record key: the member (or region) its payload names, when that can be one at all. The payload
    is untrusted: a NUL would not fit the outbox's text column, a key of a megabyte not the broker's limit."""
    key = key_of(record)
    return key if key is not None and len(key) <= MEMBER_ID_MAX and "\x00" not in key else None


# The events whose effect on a member's years is told by their outputs alone, a visit's and an account's: a
# settlement moves the counters of its deltas' periods, a movement the balance of its year and so of every later
# one (`summary.balance_at_end_of`), an external fund payment the counters of its own year
# (`policies.accounts.external_fund_payment`, which has no output); whatever else they change no member_year row
# reads (`projections.member_year.UNREAD`: the balance itself, contributions, the contribution base, the pension, a
# closed account). Any other event may change what every year's row reads (statuses, enrolments, certifications,
# incentives): its members' years are all written again.
YEARS_FROM_OUTPUTS = frozenset(kind for kind in HANDLERS if kind.split(".")[0] in ("visit", "account"))


@dataclass
class Touched:
    """A member the batch changed, and what of it: which of its member_year rows the batch must write again."""

    member: MemberState
    last_seq: int
    years: set[int] = field(default_factory=set)  # the years of the counters it moved
    balance_from: int | None = None  # the earliest year a movement was booked in: its balance and every later one's
    every_year: bool = False  # an event that may change every year's row

    def years_changed(self) -> set[int]:
        """The member's years whose rows the batch can have changed (`every_year` aside)."""
        if self.balance_from is None:
            return self.years  # a period's counters are among the member's years (`summary.years_of`) once moved
        start = self.balance_from
        return self.years | {year for year in years_of(self.member) if year >= start}


def _of(touched: Touched | None, output: Settlement | Movement) -> bool:
    """Whether `output` is of the member `touched` (touched again by the same event, it would be left as it is)."""
    return (
        touched is not None and touched.member.member_id == output.member_id and touched.member.region == output.region
    )


@dataclass
class BatchRows:
    events: list[StoredEvent] = field(default_factory=list)
    settlements: list[tuple] = field(default_factory=list)
    movements: list[tuple] = field(default_factory=list)
    incentives: list[tuple] = field(default_factory=list)
    rejections: list[tuple] = field(default_factory=list)
    parked: list[tuple] = field(default_factory=list)
    signatures: list[tuple] = field(default_factory=list)  # ledger_signatures rows (`keep_signature`)
    payments: list[tuple] = field(default_factory=list)
    closed_years: list[tuple] = field(default_factory=list)
    fund: FundTotals = field(default_factory=FundTotals)
    touched: dict[tuple[str, str], Touched] = field(default_factory=dict)
    published: list[dict] = field(default_factory=list)  # wire records, in order, for the caller to print
    outbox: list[tuple] = field(default_factory=list)  # (stream, key, JSON) of what the topics receive, in order
    # the ledger positions of the events settled, in order: where replay compares the ledger's rows with these
    positions: dict[int, None] = field(default_factory=dict)
    # A year close is evaluated a chunk of members at a time: its outputs here are those of these members only.
    members_only: frozenset[str] | None = None
    # False: what leaves medledger (`published`, `outbox`) is not built; a replay writes and compares the rows.
    publish: bool = True
    # The parameter digest of the last event of each member the batch loaded (None: none): a member settled under
    # other parameters before has every year written; otherwise only the years the batch changed.
    loaded: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # What the projections are written from, computed once (see `freeze`).
    _state_rows: list[tuple] | None = None
    _year_rows: YearRows | None = None

    def size(self) -> int:
        """About how many rows the batch writes, which decides how they are sent (`db.writes.Writes.sized`)."""
        outputs = len(self.settlements) + len(self.movements) + len(self.incentives) + len(self.rejections)
        return len(self.events) + outputs + len(self.parked) + len(self.touched) + len(self.signatures)

    def settling(self, item: Incoming) -> None:
        """What follows is `item`'s (with what an enrolment releases), until the next item: of use to rows that
        answer input by input (`ledger.offline.Answers`)."""

    def keep_signature(self, item: Incoming) -> None:
        """Who sent `item` (as it arrived), kept with it."""
        signed = item.signed
        if signed is not None:
            assert item.event is not None  # signed once admitted, and admitted once decoded
            self.signatures.append(
                (
                    item.event.event_id,
                    signed.producer,
                    signed.key_id,
                    signed.signature,
                    signed.value,
                    signed.at,
                    item.event.region,
                )
            )

    def touch(self, member: MemberState | None, seq: int, every_year: bool = False) -> Touched | None:
        """`member` changed by the event at `seq`; `every_year`: in a way that may change every year's row."""
        if member is None:
            return None
        key = (member.region, member.member_id)
        entry = self.touched.get(key)
        if entry is None:
            entry = self.touched[key] = Touched(member, seq, every_year=every_year)
        else:
            entry.member, entry.last_seq = member, seq  # a re-enrolment makes the member anew
            entry.every_year = entry.every_year or every_year
        return entry

    def accept(
        self, seq: int, event: EventBase, outputs: list[Settlement | Movement | IncentiveEvaluation], book: Book
    ) -> None:
        self.positions[seq] = None
        every_year = event.event_type not in YEARS_FROM_OUTPUTS
        member_id = getattr(event, "member_id", None)
        own = None  # the event's member, as touched: the member of most of its outputs too
        if member_id is not None:
            own = self.touch(book.member(event.region, member_id), seq, every_year)
            if own is not None and event.event_type == "account.external_fund_payment":
                own.years.add(event.business_date.year)
        if event.event_type == "account.payment_requested":  # the model's or the fast decoder's Struct of it
            self.payments.append((event.region, cast("PaymentRequested", event).payment_id, seq))
        for output in outputs:
            if isinstance(output, Settlement):
                # kept in our names; published with the national aliases beside them, their text spliced on
                kept = settlement_record(output)
                text = dumps(kept)
                if self.publish:
                    aliases = national(kept)
                    record = kept | aliases
                    self.published.append(record)
                    self.outbox.append((SETTLEMENTS, key_of(record), f"{text[:-1]},{dumps(aliases)[1:]}"))
                self.settlements.append(
                    (
                        output.settlement_id,
                        seq,
                        output.event_id,
                        output.region,
                        output.member_id,
                        output.visit_id,
                        output.visit_date,
                        output.policy_id,
                        output.fund_pool,
                        output.fund_paid,
                        output.reverses,
                        text,
                        dumps(deltas_to_json(output)),
                    )
                )
                self.fund.add(output)
                entry = (
                    own
                    if _of(own, output)
                    else self.touch(book.member(output.region, output.member_id), seq, every_year)
                )
                if entry is not None:
                    entry.years.update(int(period.split("#")[0]) for period, _, _ in output.deltas)
                continue
            record = wire(output)
            text = dumps(record)
            if self.publish:
                self.published.append(record)
                self.outbox.append((SETTLEMENTS, key_of(record), text))
            if isinstance(output, Movement):
                self.movements.append(  # in MOVEMENT_ROW's order
                    (
                        output.movement_id,
                        seq,
                        output.region,
                        output.member_id,
                        output.kind,
                        output.purpose,
                        output.amount,
                        output.balance_after,
                        output.policy_id,
                        text,
                    )
                )
                entry = (
                    own
                    if _of(own, output)
                    else self.touch(book.member(output.region, output.member_id), seq, every_year)
                )
                if entry is not None:
                    year = output.booked_on.year
                    entry.balance_from = year if entry.balance_from is None else min(entry.balance_from, year)
            elif isinstance(output, IncentiveEvaluation):
                self.incentives.append((seq, output.region, output.member_id, output.year, text))
                self.touch(book.member(output.region, output.member_id), seq, every_year)

    def reject(
        self,
        seq: int | None,
        event_id: str | None,
        source: str | None,
        reason: str,
        detail: str,
        payload: str,
        shown_id: str | int | None = None,
        policy_id: str | None = None,
        region: str | None = None,
    ) -> None:
        """A refusal; `region` is the event's, given with its ledger position (`seq`)."""
        if seq is not None:
            self.positions[seq] = None
        digest = text_digest(payload) if seq is None else None  # of the input as received
        event_id, source = storable(event_id), storable(source)
        detail, payload = storable(detail), storable(payload)
        shown = storable(shown_id) if shown_id is not None else event_id
        assert shown is not None  # a refusal names its event, or where its input was (`shown_id`)
        self.rejections.append((seq, event_id, source, reason, detail, payload, digest, policy_id, region))
        if self.publish:
            record = rejection_wire(shown, reason, detail, shown_payload(payload))
            self.published.append(record)
            self.outbox.append((REJECTIONS, refusal_key(record), dumps(record)))

    def year_rows(self, registry: PolicyRegistry, params_digest: str) -> YearRows:
        """The member_year rows to write, from each touched member's state now, so that rows never depend on
        batch boundaries: (rows replacing all of a member's rows, rows replacing single years, the members whose
        rows are all replaced). A year is written again only when what the batch did to the member can move it
        (`Touched`), and every year when the member is new to the batch's parameters. Computed once."""
        if self._year_rows is None:
            self._year_rows = self._changed_year_rows(registry, params_digest)
        return self._year_rows

    def _changed_year_rows(self, registry: PolicyRegistry, params_digest: str) -> YearRows:
        whole_rows: list[tuple] = []
        year_rows: list[tuple] = []
        whole: list[tuple[str, str]] = []
        loaded = self.loaded
        for key, entry in self.touched.items():
            if entry.every_year or key not in loaded or loaded[key] != params_digest:
                whole.append(key)
                whole_rows.extend(member_year.rows(entry.member, years_of(entry.member), registry))
            else:
                changed = entry.years_changed()
                if changed:
                    year_rows.extend(member_year.rows(entry.member, changed, registry))
        return whole_rows, year_rows, whole

    def freeze(self, registry: PolicyRegistry, params_digest: str) -> None:
        """Serialise the touched members' states and years now: the next batch may go on changing the same
        member objects while this one is still being written (`ledger.carry`)."""
        self.state_rows()
        self.year_rows(registry, params_digest)

    def state_rows(self) -> list[tuple]:
        """Computed once."""
        if self._state_rows is None:
            self._state_rows = [
                (region, member_id, state_json(entry.member).decode(), entry.last_seq)
                for (region, member_id), entry in sorted(self.touched.items())
            ]
        return self._state_rows
