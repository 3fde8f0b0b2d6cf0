"""member_year rows are a function of the member's state alone: the member's last ledger position is in
member_state, and a batch now writes only the years it can have changed, so the rows no longer carry it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE member_year DROP COLUMN last_seq")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
