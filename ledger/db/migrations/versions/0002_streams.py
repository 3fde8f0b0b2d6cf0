"""Kafka: consumed positions with a claim epoch per partition, and the transactional outbox.

`consumer_offsets.epoch` fences a consumer that lost its partitions: whoever is assigned a partition raises its
epoch, and a batch commits its offsets only while the epoch is still the one it claimed.

`outbox` holds every published record (settlements, reversals, movements, incentives, rejections) in commit
order, written in the transaction that produced it; `outbox_relay` is how far each relay has published.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE consumer_offsets ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE consumer_offsets ALTER COLUMN next_offset DROP NOT NULL;

CREATE TABLE outbox (
    position    bigserial PRIMARY KEY,
    stream      text NOT NULL,
    key         text,
    value       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox_relay (
    relay    text PRIMARY KEY,
    position bigint NOT NULL
);
"""


def upgrade() -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)
    # The service appends to the outbox and never changes it; the owner may prune what every relay has published.
    op.execute("REVOKE ALL ON outbox FROM medledger_app")
    op.execute("GRANT SELECT, INSERT ON outbox TO medledger_app")
    op.execute("GRANT USAGE ON SEQUENCE outbox_position_seq TO medledger_app")
    op.execute("GRANT SELECT, INSERT, UPDATE ON outbox_relay TO medledger_app")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
