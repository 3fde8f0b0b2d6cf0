"""The database schema as SQLAlchemy Core tables.

Ledger tables are append-only: the database refuses UPDATE, DELETE and TRUNCATE on them (triggers in the first
migration; on each partition too, migration 0012) and the service role may only INSERT and SELECT there. The
ledger tables of events and what derives from them are partitioned by region (`db.partitions`). Projection tables
are read models derived from the ledger alone; each can be dropped and rebuilt (`medledger projections rebuild`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

from projections import member_year as member_year_row

from ..adoption import IS_ADOPTION

metadata = MetaData()
# Unbounded: every amount the contract accepts (below 10**15 yuan), and every sum of them a balance, a member's
# year or a region's month can reach, is stored exactly; the engine keeps each one to the fen.
MONEY = Numeric()

# -- the ledger ------------------------------------------------------------------------------------------------------

parameter_sets = Table(
    "parameter_sets",
    metadata,
    Column("digest", Text, primary_key=True),  # sha256 of `content`
    Column("content", Text, nullable=False),  # TOML: every value in force (policies.recorded), or a file as given
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The ledger tables are partitioned by region (`LIST (region)`, migration 0012, `db.partitions`): every key holds
# the region, and an event is referred to by (seq, region).
ledger_events = Table(
    "ledger_events",
    metadata,
    Column("seq", BigInteger, nullable=False),  # `stream << 40 | position`: gap-free in its region's stream
    Column("event_id", Text, nullable=False),  # the producer's idempotency key, unique in `ledger_event_ids`
    Column("event_type", Text, nullable=False),
    Column("region", Text, nullable=False),
    Column("member_id", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=False),  # canonical JSON of the validated event: the bytes the hash covers
    Column("params_digest", Text, ForeignKey("parameter_sets.digest"), nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),  # sha256(prev_hash || seq as 8 bytes || payload)
    Column("source", Text),  # where it came from: file:line, topic/partition/offset
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("seq", "region"),
    Index("ledger_events_member", "region", "member_id", "seq"),
    Index("ledger_events_adoptions", "seq", postgresql_where=text(IS_ADOPTION)),
    Index("ledger_events_event", "event_id", "region"),  # found by id and region: migration 0013
    postgresql_partition_by="LIST (region)",
)

# Every event id the ledger holds, with its region, written in the statement that writes the event: an id is the
# ledger's, not a region's, and a partitioned table has no unique index without its partition key.
ledger_event_ids = Table(
    "ledger_event_ids",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("region", Text, nullable=False),
)

# The head of the single chain written before streams (`ledger.streams`): every region's stream starts from it.
ledger_anchor = Table(
    "ledger_anchor",
    metadata,
    Column("history_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("history_hash", LargeBinary, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def _event_of(table: str) -> ForeignKeyConstraint:
    """A row's reference to the event it derives from: (seq, region), the key of the partitioned ledger_events."""
    return ForeignKeyConstraint(
        ["seq", "region"], ["ledger_events.seq", "ledger_events.region"], name=f"{table}_seq_fkey"
    )


# A region's stream: its number (its events' seq is `stream << 40 | position`) and the hash it starts from.
ledger_streams = Table(
    "ledger_streams",
    metadata,
    Column("region", Text, primary_key=True),
    Column(
        "stream",
        Integer,
        nullable=False,
        unique=True,
        server_default=text("nextval('ledger_stream_numbers'::regclass)"),
    ),
    Column("genesis", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

ledger_settlements = Table(
    "ledger_settlements",
    metadata,
    Column("settlement_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("region", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("visit_id", Text, nullable=False),
    Column("visit_date", Date, nullable=False),
    Column("policy_id", Text, nullable=False),
    Column("fund_pool", Text, nullable=False),
    Column("fund_paid", MONEY, nullable=False),
    Column("reverses", Text),
    # the settlement in our names, JSON as medledger wrote it (`codec.dumps`); published with its national aliases
    # (`records.with_aliases`), which a row kept before had beside them
    Column("record", Text, nullable=False),
    Column("deltas", Text, nullable=False),  # the accumulator movements (JSON), so a reversal returns exactly these
    PrimaryKeyConstraint("settlement_id", "region"),
    _event_of("ledger_settlements"),
    Index("ledger_settlements_visit", "region", "visit_id", unique=True, postgresql_where=text("reverses IS NULL")),
    Index(
        "ledger_settlements_reverses", "reverses", "region", unique=True, postgresql_where=text("reverses IS NOT NULL")
    ),
    Index("ledger_settlements_member", "region", "member_id", "visit_date"),
    Index("ledger_settlements_seq", "seq"),
    Index("ledger_settlements_region_day", "region", "visit_date"),
    postgresql_partition_by="LIST (region)",
)

ledger_movements = Table(
    "ledger_movements",
    metadata,
    Column("movement_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("region", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("amount", MONEY, nullable=False),
    Column("balance_after", MONEY, nullable=False),
    Column("policy_id", Text, nullable=False),
    Column("record", Text, nullable=False),  # JSON as medledger wrote it, as a settlement's
    PrimaryKeyConstraint("movement_id", "region"),
    _event_of("ledger_movements"),
    Index("ledger_movements_member", "region", "member_id", "seq"),
    Index("ledger_movements_seq", "seq"),
    postgresql_partition_by="LIST (region)",
)

ledger_incentives = Table(
    "ledger_incentives",
    metadata,
    Column("seq", BigInteger, nullable=False),
    Column("region", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("record", Text, nullable=False),  # JSON as medledger wrote it, as a settlement's
    PrimaryKeyConstraint("seq", "member_id", "region"),
    _event_of("ledger_incentives"),
    postgresql_partition_by="LIST (region)",
)

ledger_rejections = Table(
    "ledger_rejections",
    metadata,
    Column(
        "rejection_id",
        BigInteger,
        nullable=False,
        server_default=text("nextval('ledger_rejections_rejection_id_seq'::regclass)"),
    ),
    Column("seq", BigInteger),  # null for input that never became an event
    Column("event_id", Text),
    Column("source", Text),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("payload", Text, nullable=False),  # the input as received
    Column("payload_digest", Text),  # sha256 of unreadable input, so a repeat of it is acknowledged once
    Column("policy_id", Text),  # the policy in force for the event, when one was
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("region", Text),  # the region of the event at `seq`; null with it
    _event_of("ledger_rejections"),
    CheckConstraint("(seq IS NULL) = (region IS NULL)", name="ledger_rejections_region"),
    Index("ledger_rejections_id", "rejection_id"),
    Index("ledger_rejections_seq", "seq"),
    Index("ledger_rejections_event", "event_id"),
    Index("ledger_rejections_unread", "payload_digest", postgresql_where=text("seq IS NULL")),
    # the last refusal without a ledger position, which a batch settled without the lock is checked against
    Index("ledger_rejections_positionless", "rejection_id", postgresql_where=text("seq IS NULL")),
    postgresql_partition_by="LIST (region)",
)

# Who sent each event, as it proved it (`ledger.authority`): the producer, its key, the signature and the bytes it
# signed (the record's value as received), with when it arrived. Written when the event is first admitted (appended
# or parked); `replay --verify` checks every one again against the key valid then.
ledger_signatures = Table(
    "ledger_signatures",
    metadata,
    Column("event_id", Text, nullable=False),
    Column("producer", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("signed", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("region", Text, nullable=False),  # its event's
    PrimaryKeyConstraint("event_id", "region"),
    postgresql_partition_by="LIST (region)",
)

# -- waiting room: events for members not yet enrolled; append-only like the ledger ------------------------------

parked_events = Table(
    "parked_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("region", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("source", Text),
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("arrival", BigInteger, nullable=False),  # keeps the order events arrived in
    Index("parked_events_member", "region", "member_id", "arrival"),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger),  # None until the first batch of a claimed partition commits
    Column("epoch", BigInteger, nullable=False, server_default=text("0")),  # raised by each claim of the partition
    PrimaryKeyConstraint("consumer", "topic", "partition"),
)

# Every published record, in commit order, written in the transaction that produced it (transactional outbox).
outbox = Table(
    "outbox",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=True),
    Column("stream", Text, nullable=False),  # "settlements" or "rejections"
    Column("key", Text),  # the member, where there is one
    Column("value", Text, nullable=False),  # the record as JSON, the line `medledger settle` prints
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox_relay = Table(
    "outbox_relay",
    metadata,
    Column("relay", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),  # the last outbox position published
)

# -- projections ---------------------------------------------------------------------------------------------------


# The engine's state of each member, so the next event continues from it.
member_state = Table(
    "member_state",
    metadata,
    Column("region", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    # The parameter set the event at last_seq was settled under: what a batch asks of a member it reads (migration
    # 0014), without a probe of the events.
    Column("params_digest", Text, nullable=False),
    PrimaryKeyConstraint("region", "member_id"),
)


# Per member and year: accumulators, limits, incentive, balance and enrolment status. A row is a function of the
# member's state and the parameters alone, so a batch writes only the years it can have changed.
# Its columns are projections.member_year's SHAPE, each kind of value with its SQL type.
_KINDS: dict[str, TypeEngine[Any] | type[TypeEngine[Any]]] = {
    "text": Text,
    "integer": Integer,
    "money": MONEY,
    "points": Numeric(4, 1),
    "json": JSONB,
}
member_year = Table(
    "member_year",
    metadata,
    *(
        Column(name, _KINDS[kind.removesuffix(" or none")], nullable=kind.endswith(" or none"))
        for name, kind in member_year_row.SHAPE
    ),
    PrimaryKeyConstraint("region", "member_id", "year"),
)


# Pooled-fund payments per region, month and pool: the separate books of 000 第四条.
fund_totals = Table(
    "fund_totals",
    metadata,
    Column("region", Text, nullable=False),
    Column("month", Date, nullable=False),
    Column("pool", Text, nullable=False),
    Column("fund_paid", MONEY, nullable=False),
    Column("settlements", Integer, nullable=False),
    Column("reversals", Integer, nullable=False),
    PrimaryKeyConstraint("region", "month", "pool"),
)


closed_years = Table(
    "closed_years",
    metadata,
    Column("region", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("region", "year"),
)


account_payments = Table(
    "account_payments",
    metadata,
    Column("region", Text, nullable=False),
    Column("payment_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("region", "payment_id"),
)


# -- the console: its users, and what it appends (who viewed which member; the verifications it ran) ---------------
console_users = Table(
    "console_users",
    metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),  # auditor, fund_manager, operator
    Column("password_hash", Text, nullable=False),  # argon2id
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


console_access_log = Table(
    "console_access_log",
    metadata,
    Column("access_id", BigInteger, primary_key=True, autoincrement=True),
    Column("viewed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("user_name", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("region", Text),
    Index("console_access_log_member", "member_id", "viewed_at"),
)


console_verifications = Table(
    "console_verifications",
    metadata,
    Column("verification_id", BigInteger, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("user_name", Text, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("replayed", Text, nullable=False),
    Column("chain_breaks", Integer, nullable=False),
    Column("differences", Integer, nullable=False),
    Column("head_seq", BigInteger),
    Column("head_hash", LargeBinary),
    Column("stream_heads", JSONB, nullable=False),
    Column("detail", Text, nullable=False),
)
