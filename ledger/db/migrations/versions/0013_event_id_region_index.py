"""An event is found by its id and region through one index: `ledger_events_event` becomes `(event_id, region)`.

Every look-up of an event by its id names its region too (`ledger_event_ids` says which region holds an id): the
repeats of a batch (`ledger.db.parking.HELD`), a visit's facility, a signature's event, a parked event released.
On the index of `event_id` alone, a partition without statistics yet (just written, before autovacuum analysed
it) was read through a BitmapAnd of that index and `ledger_events_member`'s `region` prefix, which reads every
index entry of the region: a batch of 1,140 repeats took a second instead of 10 ms. An index of both columns is
the plan however old the statistics, and serves a look-up by id alone as the one before did.

Built on the partitioned table, it is built on each partition, in the migration's transaction (writers wait for
it: a few seconds a million events).

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
    op.execute("DROP INDEX ledger_events_event")
    op.execute("CREATE INDEX ledger_events_event ON ledger_events (event_id, region)")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
