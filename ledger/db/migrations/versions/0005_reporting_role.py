"""A role of its own for the downstream reporting consumer: it creates and fills its tables in the `reporting`
schema and reads nothing else. It used to connect as the ledger's owner, whose rights include switching the
append-only triggers off.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'medledger_reporting') THEN
        CREATE ROLE medledger_reporting LOGIN;
    END IF;
END
$$
"""

# A reporting table made by the owner before this role existed: amounts unbounded (as 0004 did for the ledger),
# and rows the role may add and read.
EARLIER_TABLE = """
DO $$
BEGIN
    IF to_regclass('reporting.settlements') IS NOT NULL THEN
        ALTER TABLE reporting.settlements ALTER COLUMN total_amount TYPE numeric,
            ALTER COLUMN fund_paid TYPE numeric, ALTER COLUMN account_paid TYPE numeric,
            ALTER COLUMN cash_paid TYPE numeric;
        GRANT SELECT, INSERT ON reporting.settlements TO medledger_reporting;
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(ROLE)
    op.execute("CREATE SCHEMA IF NOT EXISTS reporting")
    op.execute("GRANT USAGE, CREATE ON SCHEMA reporting TO medledger_reporting")
    op.execute(EARLIER_TABLE)
    # its batches pass through a temporary table
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO medledger_reporting', current_database()); "
        "END $$"
    )


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
