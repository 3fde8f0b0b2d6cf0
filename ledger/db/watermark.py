"""The watermark's queries (`ledger.carry.Watermark`): read on its own, or by a batch's write statement."""

from __future__ import annotations

from ..carry import Watermark
from .connection import Raw
from .writes import Writes

_PARTS = (
    "SELECT coalesce(max(seq), 0) FROM ledger_events",
    "SELECT coalesce(max(arrival), 0) FROM parked_events",
    "SELECT coalesce(max(rejection_id), 0) FROM ledger_rejections",
    "SELECT relfilenode::bigint FROM pg_class WHERE oid = 'member_state'::regclass",
)
WATERMARK = "SELECT " + ", ".join(f"({part})" for part in _PARTS)


async def watermark(raw: Raw) -> Watermark:
    return Watermark(*await raw.fetchrow(WATERMARK))


def add_watermark(writes: Writes) -> int:
    """The watermark as a batch's write statement finds it under the append lock, before its own writes: the
    index in what `writes.run` returns of the text `carry.watermark_of` reads."""
    return writes.before("SELECT json_build_array(" + ", ".join(f"({part})" for part in _PARTS) + ")::text")
