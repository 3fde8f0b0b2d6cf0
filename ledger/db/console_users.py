"""The console's users, its access log and the verifications it ran: the only tables the console writes.

Users are added, changed and removed with the owner's rights (`medledger users`); the console's own role only
reads them. The access log and the verifications are append-only (migration 0007).
"""

from __future__ import annotations

from datetime import datetime

import orjson

from .connection import Raw

ROLES = ("auditor", "fund_manager", "operator")


async def add_user(raw: Raw, name: str, role: str, password_hash: str) -> bool:
    """False when a user of that name exists already."""
    status = await raw.execute(
        "INSERT INTO console_users (name, role, password_hash) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        name,
        role,
        password_hash,
    )
    return status.endswith(" 1")


async def remove_user(raw: Raw, name: str) -> bool:
    return (await raw.execute("DELETE FROM console_users WHERE name = $1", name)).endswith(" 1")


async def set_password(raw: Raw, name: str, password_hash: str) -> bool:
    status = await raw.execute(
        "UPDATE console_users SET password_hash = $2, changed_at = now() WHERE name = $1", name, password_hash
    )
    return status.endswith(" 1")


async def user(raw: Raw, name: str) -> dict | None:
    row = await raw.fetchrow("SELECT name, role, password_hash, changed_at FROM console_users WHERE name = $1", name)
    return dict(row) if row else None


async def users(raw: Raw) -> list[dict]:
    return [
        dict(r) for r in await raw.fetch("SELECT name, role, created_at, changed_at FROM console_users ORDER BY name")
    ]


async def log_access(raw: Raw, user_name: str, member_id: str, region: str | None) -> None:
    await raw.execute(
        "INSERT INTO console_access_log (user_name, member_id, region) VALUES ($1, $2, $3)",
        user_name,
        member_id,
        region,
    )


async def access_log(raw: Raw, member_id: str | None = None, limit: int = 200) -> list[dict]:
    rows = await raw.fetch(
        "SELECT access_id, viewed_at, user_name, member_id, region FROM console_access_log "
        "WHERE $1::text IS NULL OR member_id = $1 ORDER BY access_id DESC LIMIT $2",
        member_id,
        limit,
    )
    return [dict(r) for r in rows]


async def record_verification(
    raw: Raw,
    started_at: datetime,
    user_name: str,
    ok: bool,
    replayed: str,
    chain_breaks: int,
    differences: int,
    head: tuple[int, bytes] | None,
    stream_heads: list[dict],
    detail: str,
) -> None:
    await raw.execute(
        "INSERT INTO console_verifications (started_at, user_name, ok, replayed, chain_breaks, differences, "
        "head_seq, head_hash, stream_heads, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10)",
        started_at,
        user_name,
        ok,
        replayed,
        chain_breaks,
        differences,
        head[0] if head else None,
        head[1] if head else None,
        orjson.dumps(stream_heads).decode(),
        detail,
    )


async def last_verification(raw: Raw) -> dict | None:
    row = await raw.fetchrow(
        "SELECT started_at, finished_at, user_name, ok, replayed, chain_breaks, differences, head_seq, head_hash, "
        "stream_heads::text AS stream_heads, detail FROM console_verifications ORDER BY verification_id DESC LIMIT 1"
    )
    if row is None:
        return None
    found = dict(row)
    found["stream_heads"] = orjson.loads(found["stream_heads"])
    return found
