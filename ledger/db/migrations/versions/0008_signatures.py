"""Who sent each event: the producer, its key id, its Ed25519 signature and the bytes it signed, kept beside the
event, append-only like the rest of the ledger (`ledger.authority`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE ledger_signatures (
    event_id    text PRIMARY KEY,
    producer    text NOT NULL,
    key_id      text NOT NULL,
    signature   bytea NOT NULL,
    signed      bytea NOT NULL,
    received_at timestamptz NOT NULL
)
"""


def upgrade() -> None:
    op.execute(TABLE)
    op.execute(
        "CREATE TRIGGER ledger_signatures_append_only BEFORE UPDATE OR DELETE ON ledger_signatures "
        "FOR EACH ROW EXECUTE FUNCTION medledger_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_signatures_no_truncate BEFORE TRUNCATE ON ledger_signatures "
        "FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
    )
    op.execute("REVOKE ALL ON ledger_signatures FROM medledger_app")
    op.execute("GRANT SELECT, INSERT ON ledger_signatures TO medledger_app")
    op.execute("GRANT SELECT ON ledger_signatures TO medledger_console")  # its integrity page verifies them too


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
