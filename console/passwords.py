"""Console users' passwords: argon2id hashes, never the password itself."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified when the user is unknown, so that a wrong name costs as long as a wrong password.
_NOBODY = _HASHER.hash("medledger: no such user")
MINIMUM_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MINIMUM_LENGTH:
        raise ValueError(f"a password has at least {MINIMUM_LENGTH} characters")
    return _HASHER.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _NOBODY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
