"""Signatures made and checked by libsodium (`ledger.ed25519`): the same bytes OpenSSL makes, every signature OpenSSL
accepts from an honest signer accepted, and what would let a signature be made without the private key refused."""

from __future__ import annotations

import base64
import os
import tomllib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.authority import (
    Authority,
    LedgerSigner,
    LedgerVerifier,
    ProducersFileError,
    Signed,
    Signer,
    event_message,
    public_key,
)
from ledger.ed25519 import Signing, Verifier, usable

# The order of the group Ed25519 works in: a signature's S must be below it.
ORDER = 2**252 + 27742317777372353535851937790883648493
# The identity point: of small order. Under it, R = identity and S = 0 is a "signature" of every message.
IDENTITY = b"\x01" + bytes(31)
SIZES = (0, 1, 63, 64, 65, 600, 5_000)


def test_signatures_are_the_bytes_openssl_makes() -> None:
    for _ in range(20):
        key = Ed25519PrivateKey.generate()
        signing = Signing(key)
        for size in SIZES:
            message = os.urandom(size)
            assert signing.sign(message) == key.sign(message)


def test_producer_and_ledger_signatures_unchanged() -> None:
    key = Ed25519PrivateKey.generate()
    value = os.urandom(300)
    producer = Signer("H32010000001", "2026-01", key)
    assert producer.signature(value) == key.sign(event_message("H32010000001", "2026-01", value))
    headers = dict(LedgerSigner(key).headers(value))
    assert LedgerVerifier([key.public_key()]).problem(list(headers.items()), value) is None
    assert LedgerVerifier([key.public_key()]).problem(list(headers.items()), value + b" ") is not None


def test_what_openssl_signs_verifies_and_nothing_altered_does() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = Verifier(key.public_key())
    for size in SIZES:
        message = os.urandom(size)
        signature = key.sign(message)
        assert verifier.verifies(signature, message)
        assert not Verifier(other.public_key()).verifies(signature, message)
        for at in (0, 31, 32, 63):
            flipped = bytearray(signature)
            flipped[at] ^= 0x01
            assert not verifier.verifies(bytes(flipped), message)
        if size:
            changed = bytearray(message)
            changed[-1] ^= 0x80
            assert not verifier.verifies(signature, bytes(changed))


def test_a_signature_of_another_length_does_not_borrow_the_message() -> None:
    """libsodium reads the signature and the message as one buffer: 63 bytes of signature followed by a message
    that starts with the 64th is, byte for byte, the buffer of a good signature. It is refused for its length."""
    key = Ed25519PrivateKey.generate()
    message = os.urandom(100)
    signature = key.sign(message)
    short, borrowed = signature[:-1], signature[-1:] + message
    assert short + borrowed == signature + message
    assert not Verifier(key.public_key()).verifies(short, borrowed)
    assert not Verifier(key.public_key()).verifies(signature + b"\x00", message)
    assert not Verifier(key.public_key()).verifies(b"", message)


def test_a_signature_whose_s_is_not_below_the_order_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    message = os.urandom(50)
    signature = key.sign(message)
    s = int.from_bytes(signature[32:], "little") + ORDER
    assert s < 2**256
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert not Verifier(key.public_key()).verifies(malleated, message)


def test_a_key_of_small_order_verifies_nothing_and_is_refused_when_read() -> None:
    weak = Ed25519PublicKey.from_public_bytes(IDENTITY)
    forged = IDENTITY + bytes(32)
    weak.verify(forged, b"any message at all")  # OpenSSL takes it: no private key was needed to make it
    assert not usable(IDENTITY)
    assert usable(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    assert not Verifier(weak).verifies(forged, b"any message at all")
    with pytest.raises(ProducersFileError, match="small order"):
        public_key(base64.b64encode(IDENTITY).decode())
    producers = tomllib.loads(
        '[producers.H32010000001]\nevents = ["visit.*"]\nregions = ["320100"]\n'
        '[[producers.H32010000001.keys]]\nid = "weak"\n'
        f'public_key = "{base64.b64encode(IDENTITY).decode()}"\nvalid_from = 2026-01-01T00:00:00Z\n'
    )
    with pytest.raises(ProducersFileError, match="small order"):
        Authority.parse(producers)


def test_authority_checks_a_producer_signature_under_its_key() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    authority = Authority.parse(
        tomllib.loads(
            '[producers.H32010000001]\nevents = ["visit.*"]\nregions = ["320100"]\n'
            f'[[producers.H32010000001.keys]]\nid = "2026-01"\npublic_key = "{public}"\n'
            "valid_from = 2026-01-01T00:00:00Z\n"
        )
    )
    value, when = os.urandom(200), datetime(2026, 6, 1, tzinfo=UTC)
    signed = Signer("H32010000001", "2026-01", key).sign(value)
    assert authority.check_signature(signed, when) is None
    wrong = Signed(signed.producer, signed.key_id, signed.signature, value + b"x")
    assert "does not verify" in (authority.check_signature(wrong, when) or "")
