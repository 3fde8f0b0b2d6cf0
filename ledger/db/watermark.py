"""The watermark's queries (`ledger.carry.Watermark`) of some regions and the refusals of some bytes: read on its
own, or by a batch's write statement."""

from __future__ import annotations

from collections.abc import Iterable

from ..carry import Watermark
from .connection import Raw
from .streams import PROJECTIONS_FILE, arrivals_text, heads_text, refused_among
from .writes import Writes


def watermark_parts(regions: str, digests: str) -> list[str]:
    """The watermark's parts of the regions in the text[] parameter `regions` and the payload digests in
    `digests`."""
    return [heads_text(regions), arrivals_text(regions), refused_among(digests), PROJECTIONS_FILE]


async def watermark(raw: Raw, regions: Iterable[str], digests: Iterable[str] = ()) -> Watermark:
    """The watermark of `regions` and of the refusals of `digests` as it is now."""
    query = "SELECT " + ", ".join(f"({part})" for part in watermark_parts("$1::text[]", "$2::text[]"))
    return Watermark(*await raw.fetchrow(query, sorted(set(regions)), sorted(set(digests))))


async def projections_file(raw: Raw) -> int:
    """Which rebuild of the projections is in place, as it is now."""
    found: int = await raw.fetchval(PROJECTIONS_FILE)
    return found


def add_watermark(writes: Writes, regions: Iterable[str], digests: Iterable[str] = ()) -> int:
    """The watermark of `regions` and of the refusals of `digests` as a batch's write statement finds it under
    their locks, before its own writes: the index in what `writes.run` returns of the text `carry.watermark_of`
    reads."""
    parts = ", ".join(f"({part})" for part in watermark_parts("{0}", "{1}"))
    return writes.before(
        f"SELECT json_build_array({parts})::text",
        (sorted(set(regions)), "text[]"),
        (sorted(set(digests)), "text[]"),
    )
