"""The maintenance role prunes the outbox: `medledger outbox prune` deletes the records every relay has published.

The outbox holds a copy of every record published to the topics, with its national names: the largest table of
the ledger's database, growing with every event. Once the relay has published a record and the consumers of the
topics have read it, it is needed nowhere: the ledger keeps what the record was made from. The service role still
only appends to the outbox; the maintenance role, which rebuilds the projections, may delete from it, and reads
how far each relay has published. The database itself refuses, whoever asks, a DELETE that would take a record
some relay has not published, or the last one published (writers read the outbox's newest position), or that is
made while the relays' position lies past the outbox's newest record (no relay records such a position); and it
refuses TRUNCATE of the outbox. The check is a trigger on each statement, over the rows it deleted; its function
names its tables with their schema and searches no other, so no temporary table can stand in for `outbox_relay`.
The relays' position is the service's to write, as its relay records it: a service role that records a position
its relay has not reached makes the records before it prunable.

Grants and triggers: no table is rewritten; each takes its lock only for the migration's commit.

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
CREATE FUNCTION medledger_outbox_published() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    published bigint := (SELECT min(position) FROM public.outbox_relay);
    latest bigint := (SELECT max(position) FROM deleted);
    newest bigint;
BEGIN
    IF latest IS NULL THEN
        RETURN NULL;
    END IF;
    IF published IS NULL OR latest > published THEN
        RAISE EXCEPTION 'medledger: outbox record % is not published yet and cannot be deleted', latest
            USING HINT = 'medledger outbox prune deletes only what every relay has published';
    END IF;
    IF latest = published THEN
        RAISE EXCEPTION 'medledger: outbox record % is the last one published and is kept', latest
            USING HINT = 'writers read the outbox''s newest position; medledger outbox prune keeps it';
    END IF;
    newest := greatest((SELECT max(position) FROM public.outbox), latest);
    IF published > newest THEN
        RAISE EXCEPTION 'medledger: the relays'' position % is past the outbox''s newest record %', published, newest
            USING HINT = 'no relay records a position it has not published: outbox_relay is not to be trusted';
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGER = (
    "CREATE TRIGGER outbox_published_only AFTER DELETE ON outbox REFERENCING OLD TABLE AS deleted "
    "FOR EACH STATEMENT EXECUTE FUNCTION medledger_outbox_published()"
)
# medledger_refuse_change (migration 0001) names the operation and the table it refuses.
NO_TRUNCATE = (
    "CREATE TRIGGER outbox_no_truncate BEFORE TRUNCATE ON outbox "
    "FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
)


def upgrade() -> None:
    op.execute("GRANT SELECT, DELETE ON outbox TO medledger_maintenance")
    op.execute("GRANT SELECT ON outbox_relay TO medledger_maintenance")
    op.execute(UNPUBLISHED)
    op.execute(TRIGGER)
    op.execute(NO_TRUNCATE)


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
