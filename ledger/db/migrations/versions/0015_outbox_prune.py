"""The maintenance role prunes the outbox: `medledger outbox prune` deletes the records every relay has published.

The outbox holds a copy of every record published to the topics, with its national names: the largest table of
the ledger's database, growing with every event. Once the relay has published a record and the consumers of the
topics have read it, it is needed nowhere: the ledger keeps what the record was made from. The service role still
only appends to the outbox (a compromised service cannot delete what it has not published yet); the maintenance
role, which rebuilds the projections, may delete from it, and reads how far each relay has published. The
database itself refuses a delete that would take a record some relay has not published yet (a trigger on each
statement, over the rows it deleted), whoever runs it.

Grants and a trigger: no table is rewritten; each takes its lock only for the migration's commit.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


UNPUBLISHED = """
CREATE FUNCTION medledger_outbox_published() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    published bigint := (SELECT min(position) FROM outbox_relay);
    latest bigint := (SELECT max(position) FROM deleted);
BEGIN
    IF latest IS NOT NULL AND (published IS NULL OR latest > published) THEN
        RAISE EXCEPTION 'medledger: outbox record % is not published yet and cannot be deleted', latest
            USING HINT = 'medledger outbox prune deletes only what every relay has published';
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGER = (
    "CREATE TRIGGER outbox_published_only AFTER DELETE ON outbox REFERENCING OLD TABLE AS deleted "
    "FOR EACH STATEMENT EXECUTE FUNCTION medledger_outbox_published()"
)


def upgrade() -> None:
    op.execute("GRANT SELECT, DELETE ON outbox TO medledger_maintenance")
    op.execute("GRANT SELECT ON outbox_relay TO medledger_maintenance")
    op.execute(UNPUBLISHED)
    op.execute(TRIGGER)


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
