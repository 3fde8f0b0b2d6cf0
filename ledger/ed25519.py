"""Ed25519 signatures made and checked by libsodium (through PyNaCl); keys are read and written by `cryptography`.

Every record medledger takes is verified, and every record it publishes is signed, so these two operations are on
the path of each event. libsodium's verification takes about half the time of OpenSSL's (42 against 85 µs for a
600-byte record on the reference machine) and its signing about two thirds (18 against 26 µs). Its calls go through
cffi, which lets other threads run meanwhile.

Ed25519 signing is deterministic: the same key and message give the same 64 bytes in either library, so what
medledger publishes is byte for byte what it published before. libsodium's verification is the stricter one: besides
a signature whose S is not below the group order, which both refuse, it refuses public keys and signature points of
small order and encodings that are not canonical. No key made by an Ed25519 key generator is of that kind, and a
signature any honest signer makes verifies under both.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_sign,
    crypto_sign_BYTES,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import BadSignatureError

SIGNATURE_BYTES: int = crypto_sign_BYTES


def usable(raw: bytes) -> bool:
    """Whether the 32 bytes `raw` are a public key a signature can be checked under: a canonical encoding of a point
    that is not of small order. Under a key of small order (the identity, say) a signature can be made for any
    message without any private key; libsodium refuses such signatures, and a producers file naming such a key is
    refused when it is read."""
    return len(raw) == 32 and bool(crypto_core_ed25519_is_valid_point(raw))


class Verifier:
    """One public key, checking signatures."""

    __slots__ = ("raw",)

    def __init__(self, key: Ed25519PublicKey):
        self.raw = key.public_bytes_raw()

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Whether `signature` is this key's over `message`. A signature of any length but 64 bytes is not one
        (libsodium takes the signature and the message as one buffer, so a shorter one would borrow the message's
        first bytes)."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            crypto_sign_open(signature + message, self.raw)
        except BadSignatureError:
            return False
        return True


class Signing:
    """One private key, signing. Holds libsodium's form of it (the seed and the public key)."""

    __slots__ = ("_secret",)

    def __init__(self, key: Ed25519PrivateKey):
        _, self._secret = crypto_sign_seed_keypair(key.private_bytes_raw())

    def seed(self) -> bytes:
        """The private key's 32 bytes (`Ed25519PrivateKey.private_bytes_raw`): libsodium's secret key begins with
        them."""
        return bytes(self._secret[:32])

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature of `message`: the same bytes `Ed25519PrivateKey.sign` gives."""
        return crypto_sign(message, self._secret)[:SIGNATURE_BYTES]
