"""The queries `replay --verify` reads the stored rows with, to compare them with their re-derivation."""

from __future__ import annotations

from .columns import primary_key, table_columns

# When each of some parked events was parked, by event id.
PARKED_SINCE = "SELECT event_id, parked_at FROM parked_events WHERE event_id = ANY($1::text[])"


# The ledger's records, JSON kept as the text medledger wrote (revision 0016): equal to their re-derivation when
# their bytes are or, for a row written before that revision, which holds the server's text of the jsonb value it
# was (its keys reordered and spaced), when it is the server's text of the re-derived value.
JSON_TEXT = frozenset(
    {
        ("ledger_settlements", "record"),
        ("ledger_settlements", "deltas"),
        ("ledger_movements", "record"),
        ("ledger_incentives", "record"),
    }
)


def json_positions(table: str, columns: tuple[str, ...]) -> tuple[int, ...]:
    """Positions of the JSON columns among `columns` of `table`: jsonb, and the records kept as text."""
    types = table_columns(table)
    return tuple(n for n, c in enumerate(columns) if types[c] == "JSONB" or (table, c) in JSON_TEXT)


# Event positions in $1, the least of them in $2 and the greatest in $3. The bounds are what keeps the plan on the
# index. A statement is planned once for every array (a generic plan), not knowing which positions it will be
# given; a year close writes every member's incentive evaluation at its one position, so by the statistics of
# ledger_incentives `seq = ANY($1)` matches the whole partition, and the plan scanned it whole, testing each row
# against each of the batch's 2,000 positions: 134 ms for each partition of 25,000 rows, in every batch run on
# that plan (40 s in all of a verify of 1M events). With the range the planner expects a few rows, and probes the
# index for the positions.
AT_POSITIONS = "t.seq = ANY($1::bigint[]) AND t.seq BETWEEN $2 AND $3"


def position_bounds(seqs: list[int]) -> tuple[int, int]:
    """The $2 and $3 of `AT_POSITIONS` for `seqs`."""
    return (min(seqs), max(seqs)) if seqs else (0, -1)


def stored_rows(table: str, columns: tuple[str, ...], where: str, members: bool, keyed: str | None = None) -> str:
    """The rows of `table` (aliased `t`, narrowed by `where`) at the event positions of `AT_POSITIONS` (of the
    members in $4; with `keyed`, whose column `keyed` is in the last parameter), jsonb columns as text for the fast
    parser."""
    types = table_columns(table)
    selected = ", ".join(f"t.{c}::text" if types[c] == "JSONB" else f"t.{c}" for c in columns)
    only = " AND t.member_id = ANY($4::text[])" if members else ""
    if keyed is not None:
        only += f" AND t.{keyed} = ANY(${5 if members else 4}::text[])"
    return f"SELECT {selected} FROM {table} t WHERE {AT_POSITIONS}{where}{only}"


def unequal_rows(table: str, shadow: str, columns: tuple[str, ...], key: str, members: bool) -> str:
    """How many rows `table` (aliased `t`) holds at the event positions of `AT_POSITIONS` (of the members in $5),
    and the `key` of each of them, and of each row of `shadow` whose key is in $4, that has no row equal to it,
    column by column, on the other side. The re-derived rows are in `shadow` already, so they are compared where
    they are, each column as its type compares, but a record kept as text (`JSON_TEXT`: `_json_differs`)."""
    listed = ", ".join(columns)
    only = " AND t.member_id = ANY($5::text[])" if members else ""
    plain = [c for c in columns if (table, c) not in JSON_TEXT]
    mine, theirs = (", ".join(f"{side}.{c}" for c in plain) for side in ("t", "s"))
    differs = " OR ".join(
        [f"({mine}) IS DISTINCT FROM ({theirs})", *(_json_differs(c) for c in columns if c not in plain)]
    )
    return (
        f"WITH t AS (SELECT {listed} FROM {table} t WHERE {AT_POSITIONS}{only}), "
        # a probe of the shadow's primary key for each key: the temporary table is never analysed, and a plan
        # made without statistics scans all of it, every batch
        f"s AS (SELECT s.* FROM unnest($4::text[]) AS k({key}) CROSS JOIN LATERAL "
        f"(SELECT {listed} FROM {shadow} s WHERE s.{key} = k.{key} OFFSET 0) AS s) "
        f"SELECT (SELECT count(*) FROM t), coalesce(array_agg(coalesce(t.{key}, s.{key})) "
        f"FILTER (WHERE {differs}), '{{}}') "
        f"FROM t FULL JOIN s ON t.{key} = s.{key}"
    )


def _json_differs(column: str) -> str:
    """Whether the ledger's record (`t`) is not the re-derived one (`s`, as medledger writes it): equal when their
    bytes are, or when the ledger's is the server's text of the re-derived value (`s::jsonb::text`), as a record
    written before revision 0016 is (the text of the jsonb value it was kept as: its keys reordered and spaced).
    Only the re-derived text, which medledger wrote, is parsed; any other text differs (a duplicated key, other
    spacing, a number for a string or `true` for 1) and the row is read back to be named
    (`verify_rows.differences`, which holds a record to the same two texts). CASE keeps the order: the parse only
    where the bytes differ."""
    t, s = f"t.{column}", f"s.{column}"
    return f"CASE WHEN {t} IS NOT DISTINCT FROM {s} THEN false ELSE {t} IS DISTINCT FROM {s}::jsonb::text END"


def projection_rows(live: str, shadow: str, limit: int) -> str:
    """Up to `limit` rows of projection `live` (of the regions in $1, all when null) that differ from `shadow`,
    matched by primary key: the key's values, whether each side has the row, and `column: live … vs replay …`
    for each column that differs."""
    key = list(primary_key(live))
    others = [column for column in table_columns(live) if column not in key]
    on = " AND ".join(f"l.{c} = s.{c}" for c in key)
    shown = ", ".join(
        f"CASE WHEN l.{c} IS DISTINCT FROM s.{c} THEN format('{c}: live %s vs replay %s', "
        f"left(coalesce(l.{c}::text, 'null'), 80), left(coalesce(s.{c}::text, 'null'), 80)) END"
        for c in others
    )
    differs = " OR ".join(f"l.{c} IS DISTINCT FROM s.{c}" for c in others) or "false"
    keys = ", ".join(f"'{c}=' || coalesce(l.{c}, s.{c})::text" for c in key)
    return (
        f"SELECT ARRAY[{keys}], l.{key[0]} IS NOT NULL, s.{key[0]} IS NOT NULL, "
        f"array_remove(ARRAY[{shown}]::text[], NULL) "
        f"FROM (SELECT * FROM {live} WHERE $1::text[] IS NULL OR region = ANY($1::text[])) l "
        f"FULL JOIN {shadow} s ON {on} "
        f"WHERE l.{key[0]} IS NULL OR s.{key[0]} IS NULL OR {differs} "
        f"ORDER BY 1 LIMIT {int(limit)}"
    )


# Parked events after ($1 arrival, $2 event id), in arrival order, $3 at a time, each beside the ledger's row of
# the same event when it was released (or refused) into the ledger: into its own region's stream. Another region's
# event under the id is another event, appended while this one waited (`pipeline.Parking` refuses this one).
PARKED_ROWS = (
    "SELECT t.event_id, t.region, t.member_id, t.payload, t.source, t.arrival, "
    "e.seq, e.region, e.member_id, e.payload, e.source "
    "FROM parked_events t LEFT JOIN ledger_events e ON e.event_id = t.event_id AND e.region = t.region "
    "WHERE (t.arrival, t.event_id) > ($1, $2) ORDER BY t.arrival, t.event_id LIMIT $3"
)
