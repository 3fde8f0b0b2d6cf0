"""The adoptions of parameter sets in the chain (`ledger.adoption`), as the ledger holds them."""

from __future__ import annotations

from ..adoption import IS_ADOPTION
from .connection import Raw


async def last_adoption(raw: Raw, before: int | None = None) -> tuple[int, str] | None:
    """(seq, digest) of the adoption last before ledger position `before` (by default, of all); None when none."""
    row = await raw.fetchrow(
        f"SELECT seq, params_digest FROM ledger_events WHERE {IS_ADOPTION} AND ($1::bigint IS NULL OR seq < $1) "
        "ORDER BY seq DESC LIMIT 1",
        before,
    )
    return tuple(row) if row else None


async def last_adopted(raw: Raw, region: str | None = None) -> str | None:
    """The digest of the parameter set adopted last (in `region`'s stream, given one); None before any."""
    if region is not None:
        return await raw.fetchval(
            f"SELECT params_digest FROM ledger_events WHERE {IS_ADOPTION} AND region = $1 ORDER BY seq DESC LIMIT 1",
            region,
        )
    last = await last_adoption(raw)
    return last[1] if last else None


async def adoptions_between(raw: Raw, after: int, through: int) -> list[tuple[int, str]]:
    """(seq, digest) of the adoptions after position `after`, up to `through`, in sequence order."""
    return [
        tuple(row)
        for row in await raw.fetch(
            f"SELECT seq, params_digest FROM ledger_events WHERE {IS_ADOPTION} AND seq > $1 AND seq <= $2 ORDER BY seq",
            after,
            through,
        )
    ]


async def adoption_rows(raw: Raw) -> list[tuple[int, str, str, str | None]]:
    """(seq, payload, digest, recorded text of that digest) of every adoption, in sequence order."""
    return [
        tuple(row)
        for row in await raw.fetch(
            "SELECT e.seq, e.payload, e.params_digest, p.content FROM ledger_events e "
            f"LEFT JOIN parameter_sets p ON p.digest = e.params_digest WHERE e.{IS_ADOPTION} ORDER BY e.seq"
        )
    ]
