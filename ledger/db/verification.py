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


def stored_rows(table: str, columns: tuple[str, ...], where: str, members: bool) -> str:
    """The rows of `table` (aliased `t`, narrowed by `where`) at the event positions of `AT_POSITIONS` (of the
    members in $4), jsonb columns as text for the fast parser."""
    types = table_columns(table)
    selected = ", ".join(f"t.{c}::text" if types[c] == "JSONB" else f"t.{c}" for c in columns)
    only = " AND t.member_id = ANY($4::text[])" if members else ""
    return f"SELECT {selected} FROM {table} t WHERE {AT_POSITIONS}{where}{only}"


def in_server_text(columns: int) -> str:
    """Of rows whose JSON columns (`columns` of them) alone do not hold the text of their re-derivation, given as
    arrays, each column's re-derived text then its stored one ($1 and $2 for the first, $3 and $4 for the
    next), the ordinal of each whose stored texts are each the re-derived text or the server's text of its value
    (`value::jsonb::text`), as a record kept before revision 0016 is (the text of the jsonb value it was: its keys
    reordered and spaced). The stored texts are the very ones compared, sent back: no other row is read. Only the
    re-derived text, which medledger wrote, is parsed; any other text is not the server's (a duplicated key,
    other spacing, a number for a string or `true` for 1). CASE keeps the order: the parse only where the bytes
    differ."""
    assert columns > 0, "a row with no JSON is compared in Python alone"
    arrays = ", ".join(f"${n}::text[]" for n in range(1, 2 * columns + 1))
    named = ", ".join(f"d{n}, s{n}" for n in range(columns))
    held = " AND ".join(
        f"CASE WHEN s{n} IS NOT DISTINCT FROM d{n} THEN true ELSE s{n} = d{n}::jsonb::text END" for n in range(columns)
    )
    return f"SELECT n FROM unnest({arrays}) WITH ORDINALITY AS d({named}, n) WHERE {held}"


# Verify settles each event as it was settled, so a visit it settles again, or reverses, is looked up among the
# settlements it has re-derived before it. Those are the ledger's own where they compared equal with it: the view
# `COMPARED` gives the ledger's settlements at the positions compared so far (through the session's setting
# `COMPARED_THROUGH`), but those whose key and region compared unequal on either side (`UNEQUAL`), and beside them
# the re-derived settlements that did not compare equal (the shadow settlements, which hold nothing else). A
# ledger that verifies is looked up in exactly as its re-derivation would be; one that does not is reported,
# whatever a lookup found. So a verify writes no settlement that compares equal, which is every settlement of a
# ledger that verifies. A row at a position whose settlements no comparison reads (`UNCOMPARED`: an adoption's, a
# year close's, an event's that no longer decodes or that another event of its id stands for), or of another
# region than its event's, is never looked up: whatever it holds is reported (`Replayer._unaccounted`), and never
# read as a settlement. The position is compared as `seq + 0`, which no index serves: planned once for every batch
# (a generic plan), the lookup of reversals (`reverses = ANY($1)`) was planned on the ledger of 922,554 events as
# a walk of each region's position index up to the bound, every batch: the server's CPU for that verify went from
# 23 s to 585 s.
COMPARED = "replay_compared_settlements"
UNEQUAL = "replay_unequal_settlements"
UNCOMPARED = "replay_uncompared_positions"
COMPARED_THROUGH = "medledger.compared_through"


def compared_settlements(shadow: str) -> list[str]:
    """The statements that make `COMPARED`, `UNEQUAL` and `UNCOMPARED` for a session whose shadow settlements are
    `shadow`, compared through no position yet."""
    return [
        f"DROP VIEW IF EXISTS {COMPARED}",
        f"DROP TABLE IF EXISTS {UNEQUAL}, {UNCOMPARED}",
        f"CREATE TEMPORARY TABLE {UNEQUAL} (settlement_id text, region text, PRIMARY KEY (settlement_id, region))",
        f"CREATE TEMPORARY TABLE {UNCOMPARED} (seq bigint PRIMARY KEY)",
        f"SELECT set_config('{COMPARED_THROUGH}', '0', false)",
        f"CREATE TEMPORARY VIEW {COMPARED} AS "
        f"SELECT t.* FROM ledger_settlements t WHERE t.seq + 0 <= current_setting('{COMPARED_THROUGH}')::bigint "
        f"AND NOT EXISTS (SELECT FROM {UNEQUAL} u WHERE u.settlement_id = t.settlement_id AND u.region = t.region) "
        f"AND NOT EXISTS (SELECT FROM {UNCOMPARED} p WHERE p.seq = t.seq) "
        "AND EXISTS (SELECT FROM ledger_events e WHERE e.seq = t.seq AND e.region = t.region) "
        f"UNION ALL SELECT * FROM {shadow}",
    ]


# The positions compared through ($1), with the (key, region) of the settlements compared unequal ($2, $3) and the
# positions up to it whose settlements no comparison read ($4), kept where `COMPARED` reads them.
COMPARED_TO = (
    f"WITH unequal AS (INSERT INTO {UNEQUAL} SELECT DISTINCT * FROM unnest($2::text[], $3::text[]) "
    "ON CONFLICT DO NOTHING), "
    f"uncompared AS (INSERT INTO {UNCOMPARED} SELECT DISTINCT unnest($4::bigint[]) ON CONFLICT DO NOTHING) "
    f"SELECT set_config('{COMPARED_THROUGH}', $1::bigint::text, false)"
)


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
