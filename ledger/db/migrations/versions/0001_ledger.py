"""The append-only ledger, its guards and role, the parking area and the projections.

The parking area is append-only too: an event waits while it is in `parked_events` and not yet in
`ledger_events` (nor refused as unreadable), so no statement can make a waiting event disappear.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEDGER_TABLES = (
    "parameter_sets",
    "ledger_events",
    "ledger_settlements",
    "ledger_movements",
    "ledger_incentives",
    "ledger_rejections",
    "parked_events",
)
PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")

SCHEMA = """
CREATE TABLE parameter_sets (
    digest      text PRIMARY KEY,
    content     text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_events (
    seq           bigint PRIMARY KEY,
    event_id      text NOT NULL UNIQUE,
    event_type    text NOT NULL,
    region        text NOT NULL,
    member_id     text,
    occurred_at   timestamptz NOT NULL,
    payload       text NOT NULL,
    params_digest text NOT NULL REFERENCES parameter_sets (digest),
    prev_hash     bytea NOT NULL,
    hash          bytea NOT NULL,
    source        text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_events_member ON ledger_events (region, member_id, seq);

CREATE TABLE ledger_settlements (
    settlement_id text PRIMARY KEY,
    seq           bigint NOT NULL REFERENCES ledger_events (seq),
    event_id      text NOT NULL,
    region        text NOT NULL,
    member_id     text NOT NULL,
    visit_id      text NOT NULL,
    visit_date    date NOT NULL,
    policy_id     text NOT NULL,
    fund_pool     text NOT NULL,
    fund_paid     numeric(16, 2) NOT NULL,
    reverses      text,
    record        jsonb NOT NULL,
    deltas        jsonb NOT NULL
);
CREATE UNIQUE INDEX ledger_settlements_visit ON ledger_settlements (region, visit_id) WHERE reverses IS NULL;
CREATE UNIQUE INDEX ledger_settlements_reverses ON ledger_settlements (reverses) WHERE reverses IS NOT NULL;
CREATE INDEX ledger_settlements_member ON ledger_settlements (region, member_id, visit_date);
CREATE INDEX ledger_settlements_seq ON ledger_settlements (seq);

CREATE TABLE ledger_movements (
    movement_id   text PRIMARY KEY,
    seq           bigint NOT NULL REFERENCES ledger_events (seq),
    region        text NOT NULL,
    member_id     text NOT NULL,
    kind          text NOT NULL,
    purpose       text NOT NULL,
    amount        numeric(16, 2) NOT NULL,
    balance_after numeric(16, 2) NOT NULL,
    policy_id     text NOT NULL,
    record        jsonb NOT NULL
);
CREATE INDEX ledger_movements_member ON ledger_movements (region, member_id, seq);
CREATE INDEX ledger_movements_seq ON ledger_movements (seq);

CREATE TABLE ledger_incentives (
    seq       bigint NOT NULL REFERENCES ledger_events (seq),
    region    text NOT NULL,
    member_id text NOT NULL,
    year      integer NOT NULL,
    record    jsonb NOT NULL,
    PRIMARY KEY (seq, member_id)
);

CREATE TABLE ledger_rejections (
    rejection_id   bigserial PRIMARY KEY,
    seq            bigint REFERENCES ledger_events (seq),
    event_id       text,
    source         text,
    reason         text NOT NULL,
    detail         text NOT NULL,
    payload        text NOT NULL,
    payload_digest text,
    policy_id      text,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_rejections_seq ON ledger_rejections (seq);
CREATE INDEX ledger_rejections_event ON ledger_rejections (event_id);
CREATE INDEX ledger_rejections_unread ON ledger_rejections (payload_digest) WHERE seq IS NULL;

CREATE TABLE parked_events (
    event_id  text PRIMARY KEY,
    region    text NOT NULL,
    member_id text NOT NULL,
    payload   text NOT NULL,
    source    text,
    parked_at timestamptz NOT NULL,
    arrival   bigint NOT NULL
);
CREATE INDEX parked_events_member ON parked_events (region, member_id, arrival);

CREATE TABLE consumer_offsets (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE member_state (
    region    text NOT NULL,
    member_id text NOT NULL,
    state     jsonb NOT NULL,
    last_seq  bigint NOT NULL,
    PRIMARY KEY (region, member_id)
);

CREATE TABLE member_year (
    region                  text NOT NULL,
    member_id               text NOT NULL,
    year                    integer NOT NULL,
    status                  text NOT NULL,
    insurance_type          text NOT NULL,
    person_type             text NOT NULL,
    deductible_paid         numeric(16, 2) NOT NULL,
    chronic_deductible_paid numeric(16, 2) NOT NULL,
    general_fund_paid       numeric(16, 2) NOT NULL,
    chronic_fund_paid       numeric(16, 2) NOT NULL,
    capped_base_used        numeric(16, 2) NOT NULL,
    chronic_base_used       numeric(16, 2) NOT NULL,
    band_position           numeric(16, 2) NOT NULL,
    chronic_pool            numeric(16, 2),
    external_fund_paid      numeric(16, 2) NOT NULL,
    bonus_points            numeric(4, 1) NOT NULL,
    health_streak           integer NOT NULL,
    balance                 numeric(16, 2) NOT NULL,
    counters                jsonb NOT NULL,
    last_seq                bigint NOT NULL,
    PRIMARY KEY (region, member_id, year)
);

CREATE TABLE fund_totals (
    region      text NOT NULL,
    month       date NOT NULL,
    pool        text NOT NULL,
    fund_paid   numeric(16, 2) NOT NULL,
    settlements integer NOT NULL,
    reversals   integer NOT NULL,
    PRIMARY KEY (region, month, pool)
);

CREATE TABLE closed_years (
    region text NOT NULL,
    year   integer NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (region, year)
);

CREATE TABLE account_payments (
    region     text NOT NULL,
    payment_id text NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (region, payment_id)
);
"""

# The ledger is append-only: the database itself refuses to change or remove what was written.
REFUSE = """
CREATE FUNCTION medledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'medledger: % on % is refused, the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'medledger_app') THEN
        CREATE ROLE medledger_app LOGIN;
    END IF;
END
$$;
"""


def upgrade() -> None:
    # asyncpg runs one statement per call
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)
    op.execute(REFUSE)
    for table in LEDGER_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION medledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
        )
    op.execute(ROLE)
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    op.execute("GRANT USAGE ON SCHEMA public TO medledger_app")
    op.execute("GRANT SELECT ON alembic_version TO medledger_app")
    for table in LEDGER_TABLES:
        op.execute(f"REVOKE ALL ON {table} FROM medledger_app")
        op.execute(f"GRANT SELECT, INSERT ON {table} TO medledger_app")
    op.execute("GRANT USAGE ON SEQUENCE ledger_rejections_rejection_id_seq TO medledger_app")
    for table in (*PROJECTIONS, "consumer_offsets"):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {table} TO medledger_app")
    # Replay builds fresh projections in temporary tables.
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO medledger_app', current_database()); END $$"
    )


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
