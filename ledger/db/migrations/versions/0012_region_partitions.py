"""The ledger tables partitioned by region (`LIST (region)`), so that a region can be moved to a server of its own.

`ledger_events`, `ledger_settlements`, `ledger_movements`, `ledger_incentives`, `ledger_signatures` and
`ledger_rejections` become partitioned tables: a partition per region of the policy registry and per region found
in the ledger, one for the history's adoptions (region `*`), one for refusals without a ledger position (no
region), and a DEFAULT for a region that has none yet (`medledger db upgrade` gives it its own: see
`ledger.db.partitions`). Every key gains the region, and the references to an event are `(seq, region)`.

An event id is the ledger's, not a region's: `ledger_event_ids` (unpartitioned) holds each one with its region,
written in the same statement as the event, so a repeat from any region is one index probe and a second use of an
id is refused by its primary key whichever region it names.

Signatures and refusals gain a `region` column: a signature's is its event's, a refusal's is the region of the
event it is positioned at (none for a refusal without a ledger position).

Guards and rights are those of the tables before: UPDATE and DELETE refused on every row, TRUNCATE refused on the
parent and on each partition, the same grants on each parent; a partition is the owner's alone (every role reaches
the rows through the parent). The rows are copied into their partitions and the tables before are dropped.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from ledger.db import partitions
from policies.registry import PolicyRegistry

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE ledger_events (
    seq           bigint NOT NULL,
    event_id      text NOT NULL,
    event_type    text NOT NULL,
    region        text NOT NULL,
    member_id     text,
    occurred_at   timestamptz NOT NULL,
    payload       text NOT NULL,
    params_digest text NOT NULL,
    prev_hash     bytea NOT NULL,
    hash          bytea NOT NULL,
    source        text,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_events_pkey PRIMARY KEY (seq, region),
    CONSTRAINT ledger_events_params_digest_fkey FOREIGN KEY (params_digest) REFERENCES parameter_sets (digest)
) PARTITION BY LIST (region);
CREATE INDEX ledger_events_member ON ledger_events (region, member_id, seq);
CREATE INDEX ledger_events_adoptions ON ledger_events (seq) WHERE event_type = 'ledger.parameters_adopted';
CREATE INDEX ledger_events_event ON ledger_events (event_id);

CREATE TABLE ledger_event_ids (
    event_id text PRIMARY KEY,
    region   text NOT NULL
);

CREATE TABLE ledger_settlements (
    settlement_id text NOT NULL,
    seq           bigint NOT NULL,
    event_id      text NOT NULL,
    region        text NOT NULL,
    member_id     text NOT NULL,
    visit_id      text NOT NULL,
    visit_date    date NOT NULL,
    policy_id     text NOT NULL,
    fund_pool     text NOT NULL,
    fund_paid     numeric NOT NULL,
    reverses      text,
    record        jsonb NOT NULL,
    deltas        jsonb NOT NULL,
    CONSTRAINT ledger_settlements_pkey PRIMARY KEY (settlement_id, region),
    CONSTRAINT ledger_settlements_seq_fkey FOREIGN KEY (seq, region) REFERENCES ledger_events (seq, region)
) PARTITION BY LIST (region);
CREATE UNIQUE INDEX ledger_settlements_visit ON ledger_settlements (region, visit_id) WHERE reverses IS NULL;
CREATE UNIQUE INDEX ledger_settlements_reverses ON ledger_settlements (reverses, region) WHERE reverses IS NOT NULL;
CREATE INDEX ledger_settlements_member ON ledger_settlements (region, member_id, visit_date);
CREATE INDEX ledger_settlements_seq ON ledger_settlements (seq);
CREATE INDEX ledger_settlements_region_day ON ledger_settlements (region, visit_date);

CREATE TABLE ledger_movements (
    movement_id   text NOT NULL,
    seq           bigint NOT NULL,
    region        text NOT NULL,
    member_id     text NOT NULL,
    kind          text NOT NULL,
    purpose       text NOT NULL,
    amount        numeric NOT NULL,
    balance_after numeric NOT NULL,
    policy_id     text NOT NULL,
    record        jsonb NOT NULL,
    CONSTRAINT ledger_movements_pkey PRIMARY KEY (movement_id, region),
    CONSTRAINT ledger_movements_seq_fkey FOREIGN KEY (seq, region) REFERENCES ledger_events (seq, region)
) PARTITION BY LIST (region);
CREATE INDEX ledger_movements_member ON ledger_movements (region, member_id, seq);
CREATE INDEX ledger_movements_seq ON ledger_movements (seq);

CREATE TABLE ledger_incentives (
    seq       bigint NOT NULL,
    region    text NOT NULL,
    member_id text NOT NULL,
    year      integer NOT NULL,
    record    jsonb NOT NULL,
    CONSTRAINT ledger_incentives_pkey PRIMARY KEY (seq, member_id, region),
    CONSTRAINT ledger_incentives_seq_fkey FOREIGN KEY (seq, region) REFERENCES ledger_events (seq, region)
) PARTITION BY LIST (region);

CREATE TABLE ledger_signatures (
    event_id    text NOT NULL,
    producer    text NOT NULL,
    key_id      text NOT NULL,
    signature   bytea NOT NULL,
    signed      bytea NOT NULL,
    received_at timestamptz NOT NULL,
    region      text NOT NULL,
    CONSTRAINT ledger_signatures_pkey PRIMARY KEY (event_id, region)
) PARTITION BY LIST (region);

CREATE TABLE ledger_rejections (
    rejection_id   bigint NOT NULL DEFAULT nextval('ledger_rejections_rejection_id_seq'::regclass),
    seq            bigint,
    event_id       text,
    source         text,
    reason         text NOT NULL,
    detail         text NOT NULL,
    payload        text NOT NULL,
    payload_digest text,
    policy_id      text,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    region         text,
    CONSTRAINT ledger_rejections_seq_fkey FOREIGN KEY (seq, region) REFERENCES ledger_events (seq, region),
    CONSTRAINT ledger_rejections_region CHECK ((seq IS NULL) = (region IS NULL))
) PARTITION BY LIST (region);
CREATE INDEX ledger_rejections_id ON ledger_rejections (rejection_id);
CREATE INDEX ledger_rejections_seq ON ledger_rejections (seq);
CREATE INDEX ledger_rejections_event ON ledger_rejections (event_id);
CREATE INDEX ledger_rejections_unread ON ledger_rejections (payload_digest) WHERE seq IS NULL;
CREATE INDEX ledger_rejections_positionless ON ledger_rejections (rejection_id) WHERE seq IS NULL
"""

# The rows before, in their partitions now (a signature's region is its event's, or its parked event's; a
# refusal's is the region of the event it is positioned at).
COPY = """
INSERT INTO ledger_events SELECT seq, event_id, event_type, region, member_id, occurred_at, payload, params_digest,
    prev_hash, hash, source, recorded_at FROM ledger_events_0011 ORDER BY seq;
INSERT INTO ledger_event_ids (event_id, region) SELECT event_id, region FROM ledger_events_0011;
INSERT INTO ledger_settlements SELECT settlement_id, seq, event_id, region, member_id, visit_id, visit_date,
    policy_id, fund_pool, fund_paid, reverses, record, deltas FROM ledger_settlements_0011 ORDER BY seq;
INSERT INTO ledger_movements SELECT movement_id, seq, region, member_id, kind, purpose, amount, balance_after,
    policy_id, record FROM ledger_movements_0011 ORDER BY seq;
INSERT INTO ledger_incentives SELECT seq, region, member_id, year, record FROM ledger_incentives_0011 ORDER BY seq;
INSERT INTO ledger_signatures SELECT s.event_id, s.producer, s.key_id, s.signature, s.signed, s.received_at,
    coalesce(e.region, p.region, '') FROM ledger_signatures_0011 s
    LEFT JOIN ledger_events_0011 e ON e.event_id = s.event_id LEFT JOIN parked_events p ON p.event_id = s.event_id;
INSERT INTO ledger_rejections SELECT r.rejection_id, r.seq, r.event_id, r.source, r.reason, r.detail, r.payload,
    r.payload_digest, r.policy_id, r.recorded_at, e.region FROM ledger_rejections_0011 r
    LEFT JOIN ledger_events_0011 e ON e.seq = r.seq ORDER BY r.rejection_id
"""

READERS = {
    "medledger_console": partitions.TABLES,
    "medledger_maintenance": partitions.TABLES,
    "medledger_gateway": ("ledger_events", "ledger_settlements", "ledger_rejections"),
}


def upgrade() -> None:
    # the tables before keep their rows until they are copied: their names, and their indexes', are freed
    for table in partitions.TABLES:
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_0011")
        op.execute(
            "DO $$ DECLARE i text; BEGIN FOR i IN SELECT indexname FROM pg_indexes "
            f"WHERE schemaname = current_schema() AND tablename = '{table}_0011' LOOP "
            "EXECUTE format('ALTER INDEX %I RENAME TO %I', i, i || '_0011'); END LOOP; END $$"
        )
    for statement in SCHEMA.split(";\n"):
        op.execute(statement)
    op.execute("ALTER SEQUENCE ledger_rejections_rejection_id_seq OWNED BY ledger_rejections.rejection_id")
    for table in partitions.TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION medledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
        )
    op.execute(
        "CREATE TRIGGER ledger_event_ids_append_only BEFORE UPDATE OR DELETE ON ledger_event_ids "
        "FOR EACH ROW EXECUTE FUNCTION medledger_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_event_ids_no_truncate BEFORE TRUNCATE ON ledger_event_ids "
        "FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
    )
    for statement in partitions.FUNCTION:
        op.execute(statement)
    for statement in partitions.FIXED:
        op.execute(statement)
    regions = {policy.region for policy in PolicyRegistry().all()}
    found = op.get_bind().exec_driver_sql("SELECT DISTINCT region FROM ledger_events_0011").scalars()
    for region in sorted(regions | set(found)):
        op.execute(sa.text("SELECT medledger_partition_region(:region)").bindparams(region=region))
    for statement in COPY.split(";\n"):
        op.execute(statement)
    for table in reversed(partitions.TABLES):
        op.execute(f"DROP TABLE {table}_0011")
    for table in (*partitions.TABLES, "ledger_event_ids"):
        op.execute(f"REVOKE ALL ON {table} FROM medledger_app")
        op.execute(f"GRANT SELECT, INSERT ON {table} TO medledger_app")
    for role, tables in READERS.items():
        for table in (*tables, "ledger_event_ids"):
            op.execute(f"GRANT SELECT ON {table} TO {role}")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
