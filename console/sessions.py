"""Who is logged in: server-side sessions behind an unguessable cookie, each with its own CSRF token.

The cookie is HttpOnly and SameSite=Strict, and Secure when the console is served over TLS. A session ends when
its user logs out, after `IDLE` without a request, or when the console restarts.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

COOKIE = "medledger_session"
IDLE = 8 * 3600  # seconds
ROLES = {
    # page → roles that may open it (auditor: everything; fund_manager: fund, what-if, integrity; operator: queue
    # and integrity)
    "member": ("auditor",),
    "settlement": ("auditor",),
    "access_log": ("auditor",),
    "fund": ("auditor", "fund_manager"),
    "whatif": ("auditor", "fund_manager"),
    "queue": ("auditor", "operator"),
    "integrity": ("auditor", "fund_manager", "operator"),
    "verify": ("auditor", "operator"),  # starting a verification
}
HOME = {"auditor": "/member", "fund_manager": "/fund", "operator": "/queue"}


@dataclass
class Session:
    user: str
    role: str
    changed_at: datetime  # of the user's row when they logged in: a later change ends the session
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.monotonic)

    def may(self, page: str) -> bool:
        return self.role in ROLES[page]

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf, token)


class Sessions:
    def __init__(self) -> None:
        self._by_token: dict[str, Session] = {}

    def start(self, user: str, role: str, changed_at: datetime) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(user, role, changed_at)
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > IDLE:
            del self._by_token[token]
            return None
        session.seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)


class Attempts:
    """Failed logins per user name: after `LIMIT` within `WINDOW` seconds, that name may not log in until the
    oldest of them is `WINDOW` old (a password is not guessed one request at a time)."""

    LIMIT = 5
    WINDOW = 15 * 60
    NAMES = 10_000  # user names remembered at most

    def __init__(self) -> None:
        self._failed: dict[str, list[float]] = {}

    def _recent(self, user: str) -> list[float]:
        now = time.monotonic()
        recent = [at for at in self._failed.get(user, ()) if now - at < self.WINDOW]
        if recent:
            self._failed[user] = recent
        else:
            self._failed.pop(user, None)
        return recent

    def locked(self, user: str) -> bool:
        return len(self._recent(user)) >= self.LIMIT

    def failed(self, user: str) -> None:
        self._failed.setdefault(user, []).append(time.monotonic())
        if len(self._failed) > self.NAMES:  # names made up by the thousand: keep the most recent ones
            for name in sorted(self._failed, key=lambda name: self._failed[name][-1])[: len(self._failed) // 2]:
                del self._failed[name]

    def succeeded(self, user: str) -> None:
        self._failed.pop(user, None)
