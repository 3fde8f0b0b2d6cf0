"""The passwords of medledger's database roles: read from the environment or from a file (Docker secrets), and
refused when they are a known default or too weak to stand between the network and the ledger.

A database URL given without a password takes its role's password variable (DATABASE_URL: POSTGRES_PASSWORD, as
the postgres image names the owner's), so that the password can come from a file where the URL cannot. Every
`NAME` read here may instead be given as `NAME_FILE`, the path of a file holding it (its trailing newline is
not part of it), as the postgres image reads POSTGRES_PASSWORD_FILE.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

MINIMUM_LENGTH = 16
# Defaults that example files, earlier compose files and tutorials hand out: an attacker tries these first.
KNOWN_DEFAULTS = frozenset(
    {"change-me", "change-me-too", "changeme", "password", "postgres", "secret", "medledger", "admin", "example"}
)


class UnsafeSecret(ValueError):
    """A password medledger will not set or connect with; the message is one line saying which and why."""


def secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """`name` from the environment, or the contents of the file `name`_FILE names; None when neither is set."""
    env = os.environ if environ is None else environ
    given, path = env.get(name), env.get(f"{name}_FILE")
    if given and path:
        raise UnsafeSecret(f"{name} and {name}_FILE are both set: give the password one way")
    if path:
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as error:
            raise UnsafeSecret(f"{name}_FILE: cannot read {path}: {error.strerror}") from None
    return given or None


def check_password(password: str, role: str, where: str) -> None:
    """Refuse a known default, the role's own name or anything shorter than MINIMUM_LENGTH."""
    if password.lower() in KNOWN_DEFAULTS or password.lower() == role.lower():
        reason = "is a known default" if password.lower() != role.lower() else "is the role's own name"
    elif len(password) < MINIMUM_LENGTH:
        reason = f"is shorter than {MINIMUM_LENGTH} characters"
    else:
        return
    raise UnsafeSecret(
        f"the password of {role} ({where}) {reason}: set a random one of at least {MINIMUM_LENGTH} characters "
        f"(scripts/docker/secrets writes them)"
    )


def check_url(url: str, where: str) -> None:
    """The password in a database URL, when it reaches the server over TCP (not a Unix socket)."""
    parts = urlsplit(url)
    socket_host = [host for host in parse_qs(parts.query).get("host", []) if host.startswith("/")]
    if parts.password is None or socket_host or not parts.hostname:
        return
    check_password(unquote(parts.password), unquote(parts.username or ""), where)


def database_url(name: str, password_variable: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The URL `name` gives, with `password_variable`'s password where the URL has none; checked."""
    url = secret(name, environ)
    if url is None:
        return None
    parts, where = urlsplit(url), name
    password = secret(password_variable, environ) if parts.password is None else None
    if password is not None:
        host = parts.netloc.rsplit("@", 1)[-1]
        credentials = f"{parts.username or ''}:{quote(password, safe='')}"
        url, where = urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, "")), password_variable
    check_url(url, where)
    return url
