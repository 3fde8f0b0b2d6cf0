"""The service role keeps only the rights serve, ingest, the parked sweep and replay use; a maintenance role of its
own rebuilds the projections.

What medledger_app does on each table (the SQL under ledger/db/):
  member_state, fund_totals      upserted (INSERT ... ON CONFLICT DO UPDATE): SELECT, INSERT, UPDATE
  member_year                    upserted, and a member's years rewritten whole: SELECT, INSERT, UPDATE, DELETE
  closed_years, account_payments appended: SELECT, INSERT
  consumer_offsets               claimed (upsert) and moved on (UPDATE ... FOR UPDATE): SELECT, INSERT, UPDATE
No writer empties a table (TRUNCATE) or removes an offset: only `medledger projections rebuild` truncates the
projections, and it connects as medledger_maintenance (or the owner). A compromised service can no longer wipe
the read models or rewind or forget the consumers' positions in one statement.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
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
    "outbox",
    "ledger_signatures",
)
APP_RIGHTS = {
    "member_state": "SELECT, INSERT, UPDATE",
    "member_year": "SELECT, INSERT, UPDATE, DELETE",
    "fund_totals": "SELECT, INSERT, UPDATE",
    "closed_years": "SELECT, INSERT",
    "account_payments": "SELECT, INSERT",
    "consumer_offsets": "SELECT, INSERT, UPDATE",
}
PROJECTIONS = ("member_state", "member_year", "fund_totals", "closed_years", "account_payments")

ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'medledger_maintenance') THEN
        CREATE ROLE medledger_maintenance LOGIN;
    END IF;
END
$$
"""


def upgrade() -> None:
    for table, rights in APP_RIGHTS.items():
        op.execute(f"REVOKE ALL ON {table} FROM medledger_app")
        op.execute(f"GRANT {rights} ON {table} TO medledger_app")
    # The rebuild reads the ledger, empties and refills the projections, and walks in temporary tables.
    op.execute(ROLE)
    op.execute("GRANT USAGE ON SCHEMA public TO medledger_maintenance")
    op.execute("GRANT SELECT ON alembic_version TO medledger_maintenance")
    for table in LEDGER_TABLES:
        op.execute(f"GRANT SELECT ON {table} TO medledger_maintenance")
    for table in PROJECTIONS:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {table} TO medledger_maintenance")
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO medledger_maintenance', current_database()); "
        "END $$"
    )


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
