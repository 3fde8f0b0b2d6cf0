"""The ledger keeps each record as the text medledger wrote: `record` (and a settlement's `deltas`) of
ledger_settlements, ledger_movements and ledger_incentives become `text` instead of `jsonb`.

A jsonb value is the server's own parse of the text it was given: every record cost PostgreSQL a parse as it
was written (some 3.7 µs a settlement, docs/durable-cost.md), and its text as read back is the server's (keys
reordered, spaced), not the record's. Kept as written, a record is stored as it arrives, and `replay --verify`
finds a re-derived record equal to the stored one when their bytes are, where the server parsed every re-derived
settlement to compare two values (PostgreSQL's CPU in a verify of 92,294 events: 1.19 times less). A row written
before this revision holds the server's text of its jsonb value: `replay --verify` takes it for the re-derived
record when it is the server's text of the re-derived value, and any other text for a difference
(docs/verify.md). A reader of a field of a record casts it: `record::jsonb ->> 'cash_paid'`.

Each table is rewritten, with its indexes, in the migration's transaction: readers and writers of the three tables
wait for it (docs/operations.md, docs/upgrading.md).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

RECORDS = {
    "ledger_settlements": ("record", "deltas"),
    "ledger_movements": ("record",),
    "ledger_incentives": ("record",),
}


def upgrade() -> None:
    for table, columns in RECORDS.items():
        altered = ", ".join(f"ALTER COLUMN {c} TYPE text USING {c}::text" for c in columns)
        op.execute(f"ALTER TABLE {table} {altered}")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
