"""The regions' streams in the database (`ledger.streams`): made as a region first appears, where each one's head
is, and each one's chain walked for `replay --verify`."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ..adoption import IS_ADOPTION
from ..chain import GENESIS, ChainBreak, verify_links
from ..streams import HISTORY, HISTORY_REGION, STREAM_BITS, Head, base, genesis, lock_order, stream_number
from .connection import Raw


def locks(regions: Iterable[str]) -> str:
    """The statements that take the append locks of `regions`, in their fixed order (`streams.lock_order`)."""
    return "; ".join(f"SELECT pg_advisory_xact_lock({key})" for key in lock_order(regions))


ANCHOR = "SELECT history_seq, history_hash FROM ledger_anchor"

# The head of each stream of the regions in $1 (of all, when null): its last event and its last adoption, each
# one index look-up in the stream's range of seq.
HEADS = (
    "SELECT s.region, s.stream, s.genesis, h.seq, h.hash, a.params_digest FROM ledger_streams s "
    "LEFT JOIN LATERAL (SELECT seq, hash FROM ledger_events "
    f"WHERE region = s.region AND seq > s.stream::bigint << {STREAM_BITS} "
    f"AND seq < (s.stream::bigint + 1) << {STREAM_BITS} "
    "ORDER BY seq DESC LIMIT 1) h ON true "
    f"LEFT JOIN LATERAL (SELECT params_digest FROM ledger_events WHERE {IS_ADOPTION} AND region = s.region "
    f"AND seq > s.stream::bigint << {STREAM_BITS} AND seq < (s.stream::bigint + 1) << {STREAM_BITS} "
    "ORDER BY seq DESC LIMIT 1) a ON true "
    "WHERE $1::text[] IS NULL OR s.region = ANY($1::text[]) ORDER BY s.region"
)

# Without a conflict target: two writers making one region's stream at once each pass the check of its region
# before either has inserted, and the loser then meets the winner's row on its stream number, the other unique key
# (the one that target named was not the one that collided). A region's stream number is its own (its code, or a
# number of the sequence), so a row on either key is that region's.
MAKE = (
    "INSERT INTO ledger_streams (region, stream, genesis) "
    "SELECT r, coalesce(n, nextval('ledger_stream_numbers')), g FROM unnest($1::text[], $2::int[], $3::bytea[]) "
    "WITH ORDINALITY AS u(r, n, g, o) ORDER BY o ON CONFLICT DO NOTHING"
)

# How far the regions in $1 are, for a batch settled without their locks: each one's head, as `region:seq` in
# region order; and the last refusal without a ledger position.
HEADS_TEXT = (
    "SELECT coalesce(string_agg(s.region || ':' || coalesce(h.seq, s.stream::bigint << {bits}), ',' "
    "ORDER BY s.region COLLATE \"C\"), '') FROM ledger_streams s LEFT JOIN LATERAL (SELECT seq FROM ledger_events "
    "WHERE region = s.region AND seq > s.stream::bigint << {bits} AND seq < (s.stream::bigint + 1) << {bits} "
    "ORDER BY seq DESC LIMIT 1) h "
    "ON true WHERE s.region = ANY({regions})"
)
ARRIVALS_TEXT = (
    "SELECT coalesce(string_agg(r || ':' || (SELECT coalesce(max(arrival), 0) FROM parked_events WHERE region = r), "
    "',' ORDER BY r COLLATE \"C\"), '') FROM unnest({regions}) r"
)
# How many of the payload digests in {digests} were refused without a ledger position (such a refusal has no
# region: its partition alone is read, by the index of its digests).
REFUSED_AMONG = (
    "SELECT count(DISTINCT payload_digest) FROM ledger_rejections "
    "WHERE seq IS NULL AND region IS NULL AND payload_digest = ANY({digests})"
)
PROJECTIONS_FILE = "SELECT relfilenode::bigint FROM pg_class WHERE oid = 'member_state'::regclass"


def heads_text(regions: str) -> str:
    """`HEADS_TEXT` of the regions in the text[] parameter `regions` (`$1`, say)."""
    return HEADS_TEXT.format(bits=STREAM_BITS, regions=regions)


def arrivals_text(regions: str) -> str:
    return ARRIVALS_TEXT.format(regions=regions)


def refused_among(digests: str) -> str:
    """`REFUSED_AMONG` of the digests in the text[] parameter `digests`."""
    return REFUSED_AMONG.format(digests=digests)


async def arrivals(raw: Raw, regions: Iterable[str]) -> dict[str, int]:
    """The last parking arrival of each of `regions` (0 where none parked)."""
    rows = await raw.fetch(
        "SELECT r, (SELECT coalesce(max(arrival), 0) FROM parked_events WHERE region = r) FROM unnest($1::text[]) r",
        sorted(set(regions)),
    )
    return dict(rows)


async def anchor(raw: Raw) -> tuple[int, bytes]:
    row = await raw.fetchrow(ANCHOR)
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


async def make_streams(raw: Raw, regions: Iterable[str]) -> None:
    """Give each of `regions` that has none its stream (outside a transaction, committed at once; within a batch's
    own, with it: harmless if that batch never commits, as an empty stream is its genesis). The rows go in in one
    order, whatever order a batch met its regions in: a writer that meets a region another has inserted and not yet
    committed waits for it, so two writers inserting the same new regions in opposite orders would each hold a row
    the other waits for."""
    regions = sorted(region for region in set(regions) if region != HISTORY_REGION)
    if not regions:
        return
    anchor_seq, anchor_hash = await anchor(raw)
    numbers = [stream_number(region) for region in regions]
    await raw.execute(MAKE, regions, numbers, [genesis(region, anchor_seq, anchor_hash) for region in regions])


async def stream_heads(raw: Raw, regions: Iterable[str] | None = None, make: bool = False) -> dict[str, Head]:
    """Each region's head (all regions' when `regions` is None); with `make`, the streams missing are made."""
    wanted = None if regions is None else list(dict.fromkeys(regions))
    if make and wanted:
        found = await _heads(raw, wanted)
        if not set(wanted) - set(found) - {HISTORY_REGION}:
            return found
        await make_streams(raw, wanted)
        made = await _heads(raw, wanted)
        if missing := set(wanted) - set(made) - {HISTORY_REGION}:
            raise RuntimeError(f"no stream could be made for the regions {sorted(missing)}")
        return made
    return await _heads(raw, wanted)


async def _heads(raw: Raw, regions: list[str] | None) -> dict[str, Head]:
    heads = {}
    for region, stream, start, seq, hash_, adopted in await raw.fetch(HEADS, regions):
        if seq is None:
            seq, hash_ = base(stream), start
        heads[region] = Head(region, stream, seq, bytes(hash_), adopted)
    return heads


async def history_head(raw: Raw) -> Head:
    """The head of the chain written before streams, as it stands (it must still be the anchor)."""
    row = await raw.fetchrow(
        f"SELECT seq, hash FROM ledger_events WHERE seq < {1 << STREAM_BITS} ORDER BY seq DESC LIMIT 1"
    )
    seq, hash_ = (row[0], bytes(row[1])) if row else (0, GENESIS)
    return Head(HISTORY_REGION, HISTORY, seq, hash_)


# A chain's rows in a range of seq; a region's stream's in its partition alone (`STREAM_ROWS`).
CHAIN_ROWS = "SELECT seq, payload, prev_hash, hash FROM ledger_events WHERE seq > $1 AND seq < $2 ORDER BY seq LIMIT $3"
STREAM_ROWS = (
    "SELECT seq, payload, prev_hash, hash FROM ledger_events WHERE region = $4 AND seq > $1 AND seq < $2 "
    "ORDER BY seq LIMIT $3"
)


async def next_rows(raw: Raw, count: int, positions: tuple[str, list], first_after: tuple[str, list]) -> list:
    """The next `count` rows of some streams, asked for first as the rows at the next `count` positions (the query
    and arguments of `positions`): a stream's positions follow one another, so they nearly always are, and no plan
    reads more rows for that than it returns. Asked for as the first `count` after a position, a plan made without
    statistics of the partitions (none after an ingest) reads every later row of those streams and sorts them.
    Where the positions do not hold just `count` rows (a stream's end, a gap), `first_after` asks for them so."""
    rows = await raw.fetch(positions[0], *positions[1])
    return rows if len(rows) == count else await raw.fetch(first_after[0], *first_after[1])


NEXT_ROWS = (
    "SELECT seq, payload, prev_hash, hash FROM ledger_events WHERE ($3::text IS NULL OR region = $3) "
    "AND seq > $1 AND seq < $2 ORDER BY seq"
)


async def verify_stream(
    raw: Raw, start: int, start_hash: bytes, end: int, chunk: int = 20_000, region: str | None = None
) -> list[ChainBreak]:
    """Every break in the chain of the rows with `start` < seq < `end`, walked from (`start`, `start_hash`); with
    `region`, that region's rows (its stream: a row of another region in its range is a break of its own, found by
    `verify_streams`, and leaves a gap in this walk)."""
    breaks: list[ChainBreak] = []
    after, prev_hash, prev_seq = start, start_hash, start
    while True:
        rows = await next_rows(
            raw,
            chunk,
            (NEXT_ROWS, [after, min(end, after + chunk + 1), region]),
            (CHAIN_ROWS if region is None else STREAM_ROWS, [after, end, chunk, *([] if region is None else [region])]),
        )
        if not rows:
            return breaks
        breaks.extend(verify_links(rows, prev_hash, prev_seq))
        after = prev_seq = rows[-1][0]
        prev_hash = bytes(rows[-1][3])


async def verify_streams(
    raw: Raw, regions: Iterable[str] | None = None, elsewhere: Collection[str] = ()
) -> tuple[list[ChainBreak], list[Head]]:
    """The history's chain and every stream's (of `regions`, all when None), each from where it starts: breaks,
    and the heads walked to. A stream's genesis must follow from the anchor, and the anchor must be the history's
    head; rows in no stream's range (a stream number no region has) are breaks too. The streams of `elsewhere`
    are left to whoever walks them at the same time (`verify_streams(raw, elsewhere)`), their heads with them."""
    breaks: list[ChainBreak] = []
    anchor_seq, anchor_hash = await anchor(raw)
    history = await history_head(raw)
    heads: list[Head] = []
    if regions is None:
        breaks += await verify_stream(raw, 0, GENESIS, base(1))
        if (history.seq, history.hash) != (anchor_seq, anchor_hash):
            breaks.append(
                ChainBreak(
                    history.seq, f"the history's head is not the anchor the streams start from (seq {anchor_seq})"
                )
            )
        heads.append(history)
    streams = await raw.fetch(
        "SELECT region, stream, genesis FROM ledger_streams WHERE $1::text[] IS NULL OR region = ANY($1::text[]) "
        "ORDER BY stream",
        None if regions is None else sorted(set(regions)),
    )
    for region, stream, start in streams:
        if region in elsewhere:
            continue
        expected = genesis(region, anchor_seq, anchor_hash)
        if bytes(start) != expected:
            breaks.append(ChainBreak(base(stream), f"stream {region}: its genesis does not follow from the anchor"))
        breaks += await verify_stream(raw, base(stream), expected, base(stream + 1), region=region)
        found = await _heads(raw, [region])
        heads.append(found[region])
    if regions is None:
        known = [row[1] for row in streams]
        stray = await raw.fetch(
            f"SELECT seq FROM ledger_events WHERE seq >= {base(1)} "
            f"AND NOT ((seq >> {STREAM_BITS})::int = ANY($1::int[])) ORDER BY seq LIMIT 20",
            known,
        )
        breaks += [ChainBreak(row[0], "in the range of no region's stream") for row in stray]
        mismatched = await raw.fetch(
            f"SELECT e.seq, e.region, s.region FROM ledger_events e JOIN ledger_streams s "
            f"ON s.stream = (e.seq >> {STREAM_BITS})::int WHERE e.seq >= {base(1)} AND e.region <> s.region "
            "ORDER BY e.seq LIMIT 20"
        )
        breaks += [ChainBreak(seq, f"region {found} in the stream of {own}") for seq, found, own in mismatched]
    return breaks, heads


async def heads_at(raw: Raw, positions: list[tuple[str, int]]) -> list[Head] | None:
    """The heads at the given (region, seq), with the hashes the chains hold there (a stream's genesis, or the
    history's GENESIS, at its start); None when a region has no stream or no event is at a seq in its range."""
    anchor_seq, anchor_hash = await anchor(raw)
    streams = dict(await raw.fetch("SELECT region, stream FROM ledger_streams"))
    seqs = [seq for _, seq in positions]
    hashes = {
        row[0]: bytes(row[1])
        for row in await raw.fetch("SELECT seq, hash FROM ledger_events WHERE seq = ANY($1::bigint[])", seqs)
    }
    heads = []
    for region, seq in positions:
        stream = HISTORY if region == HISTORY_REGION else streams.get(region)
        if stream is None or not base(stream) <= seq < base(stream + 1):
            return None
        found: bytes | None
        if seq == base(stream):
            found = GENESIS if stream == HISTORY else genesis(region, anchor_seq, anchor_hash)
        else:
            found = hashes.get(seq)
        if found is None:
            return None
        heads.append(Head(region, stream, seq, found))
    return heads
