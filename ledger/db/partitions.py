"""The ledger tables' partitions by region (migration 0012): one a region, so that a region can be moved to a
server of its own (`docs/scaling.md`).

A region's partitions are made by the owner, never by the service (its role runs no DDL, and a partition made in
the middle of a batch would lock the other regions' writers out of the DEFAULT partition it is checked against).
Rows of a region that has no partition yet land in the DEFAULT partitions; `medledger db upgrade` (and every
start of a service, which runs it) gives each region of the policy registry, and each region with a stream found in
a DEFAULT partition, partitions of its own, moving that region's rows out of DEFAULT in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.registry import PolicyRegistry

from .connection import Raw

# In the order their rows refer to each other: an event first, then what refers to it.
TABLES = (
    "ledger_events",
    "ledger_settlements",
    "ledger_movements",
    "ledger_incentives",
    "ledger_signatures",
    "ledger_rejections",
)

# The partitions of a region (`region`): each table's is `<table>_<suffix>`, the suffix being the region itself
# when it is a plain name (an admdvs code: `ledger_events_320100`), `history` for the history's adoptions
# (region `*`), and a digest of it otherwise. The region's rows in DEFAULT are copied into new tables, removed from
# DEFAULT (its guard lifted for this transaction's DELETE alone: the rows are not lost, they move) and the new
# tables attached; attaching copies the parent's indexes, foreign keys and row triggers to them. The number of rows
# moved; null when the region has its partitions already.
FUNCTION = (
    """CREATE FUNCTION medledger_partition_region(r text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    tables text[] := ARRAY['{tables}'];
    suffix text := medledger_partition_suffix(r);
    t text;
    moved bigint := 0;
    n bigint;
BEGIN
    IF r IS NULL OR to_regclass(quote_ident('ledger_events_' || suffix)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', t || '_' || suffix, t);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I WHERE region = %L', t || '_' || suffix, t || '_default', r);
        GET DIAGNOSTICS n = ROW_COUNT;
        moved := moved + n;
    END LOOP;
    IF moved > 0 THEN
        FOR i IN REVERSE array_length(tables, 1) .. 1 LOOP
            t := tables[i];
            EXECUTE format('ALTER TABLE %I DISABLE TRIGGER %I', t || '_default', t || '_append_only');
            EXECUTE format('DELETE FROM %I WHERE region = %L', t || '_default', r);
            EXECUTE format('ALTER TABLE %I ENABLE TRIGGER %I', t || '_default', t || '_append_only');
        END LOOP;
    END IF;
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)', t, t || '_' || suffix, r);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION medledger_refuse_change()', t || '_no_truncate', t || '_' || suffix);
    END LOOP;
    RETURN moved;
END
$$""".replace("{tables}", "', '".join(TABLES)),
    """CREATE FUNCTION medledger_partition_suffix(r text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN r = '*' THEN 'history' WHEN r ~ '^[0-9a-z_]{1,40}$' THEN r ELSE 'x' || left(md5(r), 16) END
$$""",
    "REVOKE ALL ON FUNCTION medledger_partition_region(text) FROM PUBLIC",
)

# The partitions every ledger has: DEFAULT, the history's adoptions, and refusals without a ledger position.
FIXED = (
    *(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT" for table in TABLES),
    *(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}_default "
        "FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()"
        for table in TABLES
    ),
    "CREATE TABLE ledger_rejections_none PARTITION OF ledger_rejections FOR VALUES IN (NULL)",
    "CREATE TRIGGER ledger_rejections_no_truncate BEFORE TRUNCATE ON ledger_rejections_none "
    "FOR EACH STATEMENT EXECUTE FUNCTION medledger_refuse_change()",
    "SELECT medledger_partition_region('*')",
)

PARTITION = "SELECT medledger_partition_region($1)"
# Whether the ledger is partitioned (0012) and this session's role owns it (may make partitions).
OWNER = (
    "SELECT to_regproc('medledger_partition_region') IS NOT NULL AND coalesce((SELECT pg_has_role(relowner, 'MEMBER') "
    "FROM pg_class WHERE oid = to_regclass('ledger_events')), false)"
)

# The regions with rows in a DEFAULT partition that have a stream: a region the ledger has sequenced events of.
# (Input is untrusted: a region named only by a signature kept with a parked event gets no tables of its own.)
IN_DEFAULT = (
    "SELECT region FROM ("
    + " UNION ".join(f"SELECT region FROM {table}_default" for table in TABLES)
    + ") d WHERE region IN (SELECT region FROM ledger_streams)"
)

# Each partition of a ledger table: (table, partition, its bound).
LIST = (
    "SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
    "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
    "WHERE p.relname = ANY($1::text[]) ORDER BY 1, 2"
)


async def partition(raw: Raw, regions: Iterable[str], lock: str = "") -> dict[str, int]:
    """Give each of `regions` that has none its partitions, each in a transaction of its own (as the owner, after
    the statement `lock`): the regions that got them, with the rows moved out of DEFAULT."""
    made = {}
    for region in sorted(set(regions)):
        async with raw.transaction():
            if lock:
                await raw.execute(lock)
            moved = await raw.fetchval(PARTITION, region)
        if moved is not None:
            made[region] = moved
    return made


async def partition_known(raw: Raw, lock: str = "") -> dict[str, int]:
    """Partitions for every region of the policy registry and every region with a stream and rows in DEFAULT that
    has none (nothing on a schema before 0012, nor when connected as a role that does not own the ledger)."""
    if not await raw.fetchval(OWNER):
        return {}
    regions = {policy.region for policy in PolicyRegistry().all()} | set(await waiting_in_default(raw))
    return await partition(raw, regions, lock)


async def waiting_in_default(raw: Raw) -> list[str]:
    """The regions with rows in DEFAULT that have a stream: they have no partitions of their own yet."""
    return sorted(row[0] for row in await raw.fetch(IN_DEFAULT))


async def listed(raw: Raw) -> list[tuple[str, str, str]]:
    """(table, partition, bound) of every partition of the ledger tables."""
    return [tuple(row) for row in await raw.fetch(LIST, list(TABLES))]
