"""The watermark's queries (`ledger.carry.Watermark`) of some regions: read on its own, or by a batch's write
statement."""

from __future__ import annotations

from collections.abc import Iterable

from ..carry import Watermark
from .connection import Raw
from .streams import POSITIONLESS, PROJECTIONS_FILE, arrivals_text, heads_text
from .writes import Writes

# Where the ledger is, for what every batch reads whatever its regions: the last refusal without a ledger
# position, and the projections' rebuild.
UNSCOPED = f"SELECT ({POSITIONLESS}), ({PROJECTIONS_FILE})"


def watermark_parts(regions: str) -> list[str]:
    """The watermark's parts of the regions in the text[] parameter `regions`."""
    return [heads_text(regions), arrivals_text(regions), POSITIONLESS, PROJECTIONS_FILE]


async def watermark(raw: Raw, regions: Iterable[str]) -> Watermark:
    """The watermark of `regions` as it is now."""
    query = "SELECT " + ", ".join(f"({part})" for part in watermark_parts("$1::text[]"))
    return Watermark(*await raw.fetchrow(query, sorted(set(regions))))


async def unscoped(raw: Raw) -> tuple[int, int]:
    """(last refusal without a ledger position, the projections' rebuild) as they are now."""
    rejection, projections = await raw.fetchrow(UNSCOPED)
    return rejection, projections


def add_watermark(writes: Writes, regions: Iterable[str]) -> int:
    """The watermark of `regions` as a batch's write statement finds it under their locks, before its own writes:
    the index in what `writes.run` returns of the text `carry.watermark_of` reads."""
    parts = ", ".join(f"({part})" for part in watermark_parts("{0}"))
    return writes.before(f"SELECT json_build_array({parts})::text", (sorted(set(regions)), "text[]"))
