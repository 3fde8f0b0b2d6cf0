"""An index of the parameter-set adoptions in the ledger (`ledger.adoption`): a writer reads the last one before it
settles, and replay reads them as it walks; both stay an index look-up however long the ledger grows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ledger_events_adoptions ON ledger_events (seq) WHERE event_type = 'ledger.parameters_adopted'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ledger_events_adoptions")
