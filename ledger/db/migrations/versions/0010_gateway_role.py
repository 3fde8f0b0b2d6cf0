"""The gateway's own role: `medledger_gateway` reads what a counter asks of the ledger and writes nothing.

The gateway faces the hospitals' systems; what it sends the ledger goes through the event topic, signed, checked
against its permissions and limits like any producer's. Connected as the service role it could have appended to
the ledger directly. Its reads (ledger/enquiry.py, ledger/db/lookups.py, ledger/db/projection_store.load_book):
  parameter_sets                               the parameter set adopted last, for a pre-settlement
  ledger_events                                adoptions; a visit's facility; member states' last events
  ledger_settlements, ledger_rejections,
  parked_events                                what became of the events it sent, a visit's settlement
  member_state, closed_years, account_payments the member and the book a pre-settlement settles in
  alembic_version                              the schema it runs on is current
and it LISTENs on the outbox channel, which needs no grant.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

READS = (
    "parameter_sets",
    "ledger_events",
    "ledger_settlements",
    "ledger_rejections",
    "parked_events",
    "member_state",
    "closed_years",
    "account_payments",
    "alembic_version",
)

ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'medledger_gateway') THEN
        CREATE ROLE medledger_gateway LOGIN;
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(ROLE)
    op.execute("GRANT USAGE ON SCHEMA public TO medledger_gateway")
    for table in READS:
        op.execute(f"GRANT SELECT ON {table} TO medledger_gateway")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
