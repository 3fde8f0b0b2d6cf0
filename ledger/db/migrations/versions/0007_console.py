"""The console's own role, users and access log.

`medledger_console` reads the ledger and its projections and writes nothing of them; it may add to its access log
(who viewed which member, when) and to the record of the verifications it started, both append-only like the
ledger, and read its users, whom only the owner adds, changes or removes (`medledger users`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

READS = (
    "parameter_sets",
    "ledger_events",
    "ledger_settlements",
    "ledger_movements",
    "ledger_incentives",
    "ledger_rejections",
    "parked_events",
    "member_state",
    "member_year",
    "fund_totals",
    "closed_years",
    "account_payments",
    "alembic_version",
)
APPEND_ONLY = ("console_access_log", "console_verifications")

ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'medledger_console') THEN
        CREATE ROLE medledger_console LOGIN;
    END IF;
END
$$
"""

SCHEMA = (
    """CREATE TABLE console_users (
        name          text PRIMARY KEY,
        role          text NOT NULL CHECK (role IN ('auditor', 'fund_manager', 'operator')),
        password_hash text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        changed_at    timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE console_access_log (
        access_id  bigserial PRIMARY KEY,
        viewed_at  timestamptz NOT NULL DEFAULT now(),
        user_name  text NOT NULL,
        member_id  text NOT NULL,
        region     text
    )""",
    "CREATE INDEX console_access_log_member ON console_access_log (member_id, viewed_at)",
    # a region's month of settlements, as the fund page and `report --by facility` read it
    "CREATE INDEX IF NOT EXISTS ledger_settlements_region_day ON ledger_settlements (region, visit_date)",
    """CREATE TABLE console_verifications (
        verification_id bigserial PRIMARY KEY,
        started_at      timestamptz NOT NULL,
        finished_at     timestamptz NOT NULL DEFAULT now(),
        user_name       text NOT NULL,
        ok              boolean NOT NULL,
        replayed        text NOT NULL,
        chain_breaks    integer NOT NULL,
        differences     integer NOT NULL,
        head_seq        bigint,
        head_hash       bytea,
        stream_heads    jsonb NOT NULL,
        detail          text NOT NULL
    )""",
)


def upgrade() -> None:
    op.execute(ROLE)
    for statement in SCHEMA:
        op.execute(statement)
    for table in APPEND_ONLY:  # medledger_refuse_change: the first migration's guard of the ledger
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION medledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
        )
    op.execute("GRANT USAGE ON SCHEMA public TO medledger_console")
    for table in READS:
        op.execute(f"GRANT SELECT ON {table} TO medledger_console")
    op.execute("GRANT SELECT ON console_users TO medledger_console")
    for table in APPEND_ONLY:
        op.execute(f"GRANT SELECT, INSERT ON {table} TO medledger_console")
    op.execute("GRANT USAGE ON SEQUENCE console_access_log_access_id_seq TO medledger_console")
    op.execute("GRANT USAGE ON SEQUENCE console_verifications_verification_id_seq TO medledger_console")
    # replay (verify, what-if) builds its projections in temporary tables
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO medledger_console', current_database()); END $$"
    )


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: it would destroy the audit trail")
