"""A ledger stream per region (`ledger.streams`).

The single chain written so far stays as it is, verified from GENESIS as before: it is the history. Its head is
recorded once (`ledger_anchor`), and every region's stream starts from a genesis derived from that head and the
region, so nothing recorded before can be altered without breaking every stream after it. A region's stream is
numbered by its admdvs code (a code of another shape from 1,000,000 on, as it first appears); the regions already
in the ledger get theirs here.

The service's role may read the verifications kept (their heads name the positions a root hash was taken over,
`replay --verify --anchor root:HASH`); it still may not write them.

Writers take only their regions' append locks. What a batch settled without a lock is checked at commit against
its regions' heads, and against the last refusal that has no ledger position (input that names no region, or an
event refused before it was sequenced): an index keeps that one a look-up.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE ledger_anchor (
    history_seq  bigint PRIMARY KEY,
    history_hash bytea NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE ledger_stream_numbers START 1000000;
CREATE TABLE ledger_streams (
    region     text PRIMARY KEY,
    stream     integer NOT NULL UNIQUE DEFAULT nextval('ledger_stream_numbers'::regclass),
    genesis    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_rejections_positionless ON ledger_rejections (rejection_id) WHERE seq IS NULL;
INSERT INTO ledger_anchor (history_seq, history_hash)
SELECT coalesce(max(seq), 0),
       coalesce((SELECT hash FROM ledger_events ORDER BY seq DESC LIMIT 1), decode(repeat('00', 32), 'hex'))
FROM ledger_events;
INSERT INTO ledger_streams (region, stream, genesis)
SELECT r.region,
       CASE WHEN r.region ~ '^[0-9]{6}$' AND r.region <> '000000' THEN r.region::int
            ELSE nextval('ledger_stream_numbers') END,
       sha256('medledger stream'::bytea || '\\x00'::bytea || a.history_hash || int8send(a.history_seq)
              || convert_to(r.region, 'UTF8'))
FROM (SELECT DISTINCT region FROM ledger_events WHERE region <> '*') r CROSS JOIN ledger_anchor a
ORDER BY r.region
"""

LEDGER_TABLES = ("ledger_anchor", "ledger_streams")
READERS = ("medledger_maintenance", "medledger_gateway", "medledger_reporting", "medledger_console")


def upgrade() -> None:
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    for table in LEDGER_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION medledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
        )
        op.execute(f"REVOKE ALL ON {table} FROM medledger_app")
    op.execute("GRANT SELECT ON ledger_anchor TO medledger_app")
    op.execute("GRANT SELECT, INSERT ON ledger_streams TO medledger_app")
    op.execute("GRANT USAGE ON SEQUENCE ledger_stream_numbers TO medledger_app")
    # `replay --verify --anchor root:HASH` finds the heads a root was taken over among the verifications kept
    op.execute("GRANT SELECT ON console_verifications TO medledger_app")
    for role in READERS:
        op.execute(
            f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"GRANT SELECT ON ledger_anchor, ledger_streams TO {role}; END IF; END $$"
        )


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
