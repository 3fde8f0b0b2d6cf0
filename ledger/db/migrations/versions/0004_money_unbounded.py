"""Money columns lose their precision of 16 digits: the contract accepts amounts up to 10**15 yuan, which a
numeric(16, 2) column refuses from 10**14 on, so a valid event failed its batch at commit. Unbounded numeric
stores every amount and every sum exactly. Dropping the precision of a numeric column rewrites nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MONEY_COLUMNS = {
    "ledger_settlements": ("fund_paid",),
    "ledger_movements": ("amount", "balance_after"),
    "member_year": (
        "deductible_paid",
        "chronic_deductible_paid",
        "general_fund_paid",
        "chronic_fund_paid",
        "capped_base_used",
        "chronic_base_used",
        "band_position",
        "chronic_pool",
        "external_fund_paid",
        "balance",
    ),
    "fund_totals": ("fund_paid",),
}


def upgrade() -> None:
    for table, columns in MONEY_COLUMNS.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} TYPE numeric" for c in columns))


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
