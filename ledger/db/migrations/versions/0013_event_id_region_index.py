"""An event is found by its id and region through one index: `ledger_events_event` becomes `(event_id, region)`.

Every look-up of an event by its id names its region too (`ledger_event_ids` says which region holds an id): the
repeats of a batch (`ledger.db.parking.HELD`), a visit's facility, a signature's event, a parked event released.
On the index of `event_id` alone, a partition without statistics yet (just written, before autovacuum analysed
it) was read through a BitmapAnd of that index and `ledger_events_member`'s `region` prefix, which reads every
index entry of the region, or, joined, hashed every event of the ledger: a batch of 1,140 repeats took a second
instead of 10 ms. An index of both columns, probed once an id from a lateral subquery (`HELD`), is the plan however
old the statistics; it serves a look-up by id alone as the one before did.

Built on the partitioned table, it is built on each partition, in the migration's transaction, before the index it
replaces is dropped: writers wait for the build (a few seconds a million events), readers do not; the drop and the
rename that follow hold the table only until the migration commits.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ledger_events_event_region ON ledger_events (event_id, region)")
    op.execute("DROP INDEX ledger_events_event")
    op.execute("ALTER INDEX ledger_events_event_region RENAME TO ledger_events_event")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
