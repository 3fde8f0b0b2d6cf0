"""Who may say what: each producer's public keys and permissions, and the signatures over what it sends.

A producer signs every record with its Ed25519 private key; medledger holds only the public keys (the producers
file, TOML, named by MEDLEDGER_PRODUCERS), so it cannot speak for any producer. What is signed:

    b"medledger-event-v1" NUL producer NUL key_id NUL value

`value` is the record's value exactly as sent (a Kafka record's value, a line of a file without its line end).
The producer and key ids are bound in, so neither header can be swapped for another producer's or key's; they
are restricted to letters, digits and `._:-`, so no NUL can make two messages alike.

The producers file:

    [producers.H32010000001]
    events = ["visit.*", "account.payment_requested"]  # event types, or a family of them with `.*`
    regions = ["320100"]                   # or ["*"]
    facilities = ["H32010000001"]          # hospitals and pharmacies: the facility_ids it may speak for
    id_prefix = "H32010000001-"            # its event_ids start with this; required when the file names several
    [[producers.H32010000001.keys]]
    id = "2026-01"
    public_key = "base64 of the 32-byte Ed25519 public key"
    valid_from = 2026-01-01T00:00:00Z
    revoked_at = 2026-07-01T00:00:00Z      # optional: records after it are refused

A key signs what arrives from its valid_from until it is revoked. `facilities`, when given, restricts the events
that name a facility (visits, account payments) to those facilities, and refuses such events that name none; an
event that names a visit without its facility (`visit.reversed`) is admitted only when the visit it names was
settled at one of them (`ledger.ownership`, where the ledger and the batch are read).

Producers have their own `id_prefix`, none a prefix of another's; at most one producer of a file goes without one,
and may send no id in another's prefix: then every event_id is one producer's, and no producer can send an event
under an id another will use.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .contract import InvalidEvent, field_names
from .ed25519 import Signing, Verifier, usable

if TYPE_CHECKING:
    from .contract.envelope import EventBase
    from .contract.visit import VisitReversed
    from .intake import Incoming

EVENT_DOMAIN = b"medledger-event-v1"
OUTPUT_DOMAIN = b"medledger-output-v1"  # what the relay publishes: signed by the ledger's own key
LEDGER = "medledger"
NAME = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Events that name a facility's visit by its id alone: the facility is the one the named visit was settled at.
NAMES_A_VISIT = frozenset({"visit.reversed"})
# The Kafka headers a producer's record carries.
PRODUCER_HEADER, KEY_HEADER, SIGNATURE_HEADER = "medledger-producer", "medledger-key-id", "medledger-signature"


class Unauthorized(InvalidEvent):
    """Unsigned, wrongly signed, signed with a key not valid then, or not the producer's to send. Refused and
    kept with its payload and the producer it claimed; never applied."""

    reason = "unauthorized"


class ProducersFileError(ValueError):
    pass


@dataclass(frozen=True)
class Signed:
    """A record's claim of who sent it, and the exact bytes it was signed over."""

    producer: str | None
    key_id: str | None
    signature: bytes | None
    value: bytes
    at: datetime | None = None  # when it arrived: the key must have been valid then


def signed_message(domain: bytes, producer: str, key_id: str, value: bytes) -> bytes:
    return b"\x00".join((domain, producer.encode(), key_id.encode(), value))


def event_message(producer: str, key_id: str, value: bytes) -> bytes:
    return signed_message(EVENT_DOMAIN, producer, key_id, value)


@dataclass(frozen=True)
class Key:
    key_id: str
    public: Ed25519PublicKey
    valid_from: datetime
    revoked_at: datetime | None = None
    verifier: Verifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifier", Verifier(self.public))

    def valid_at(self, when: datetime) -> bool:
        return self.valid_from <= when and (self.revoked_at is None or when < self.revoked_at)


@dataclass(frozen=True)
class Producer:
    name: str
    events: frozenset[str]
    regions: frozenset[str]
    facilities: frozenset[str] | None
    keys: dict[str, Key] = field(default_factory=dict)
    id_prefix: str | None = None  # its event_ids start with this, and no other producer's do (several: required)

    def may_send(self, event: EventBase) -> str | None:
        """Why this producer may not send `event`, or None when it may."""
        kind = event.event_type
        family = kind.split(".", 1)[0] + ".*"
        if kind not in self.events and family not in self.events and "*" not in self.events:
            return f"producer {self.name} may not send {kind}"
        region = str(getattr(event.region, "value", event.region))
        if "*" not in self.regions and region not in self.regions:
            return f"producer {self.name} may not speak for region {region}"
        if self.facilities is not None and "facility_id" in field_names(event):
            facility = getattr(event, "facility_id", None)
            if facility is None or str(facility) not in self.facilities:
                return f"producer {self.name} may not speak for facility {facility}"
        return None

    def visit_problem(self, event: VisitReversed, facility: str | None) -> str | None:
        """Why this producer may not send `event`, which names a visit settled at `facility` (None: no visit by
        that id is settled), or None when it may."""
        if self.facilities is None:
            return None
        if facility is None:
            return (
                f"producer {self.name} may not send {event.event_type} of visit {event.visit_id}: no visit by that id "
                f"is settled in region {event.region}, so none can be shown to be of its facilities"
            )
        if facility not in self.facilities:
            return f"producer {self.name} may not speak for facility {facility}, where visit {event.visit_id} settled"
        return None


class Authority:
    """The producers file read: admits a record when it is signed by a key of the producer it names, valid when
    the record arrives, and its event is one the producer may send."""

    def __init__(self, producers: dict[str, Producer], source: str = "producers"):
        self.producers, self.source = producers, source
        self.text: str | None = None  # what it was read from (`from_text`)

    @classmethod
    def load(cls, path: str | Path) -> Authority:
        """The producers file at `path`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ProducersFileError(f"{path}: {error}") from error
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "producers") -> Authority:
        """A producers file's text, read."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ProducersFileError(f"{source}: {error}") from error
        read = cls.parse(data, source)
        read.text = text
        return read

    def __reduce__(self) -> tuple:
        """To another process (a worker of `ingest --workers`) as the text it was read from, read again there: the
        producers the command checked, not the file as it may be by then."""
        if self.text is None:
            raise TypeError("producers not read from a file's text are not sent to another process")
        return (Authority.from_text, (self.text, self.source))

    @classmethod
    def from_environment(cls) -> Authority | None:
        """The producers file named by MEDLEDGER_PRODUCERS, if one is."""
        path = os.environ.get("MEDLEDGER_PRODUCERS")
        return cls.load(path) if path else None

    @classmethod
    def parse(cls, data: dict, source: str = "producers") -> Authority:
        producers = {}
        for name, entry in (data.get("producers") or {}).items():
            where = f"{source}: producers.{name}"
            if not NAME.match(name):
                raise ProducersFileError(f"{where}: a producer id is letters, digits and ._:- (at most 64)")
            keys = {}
            for key in entry.get("keys", []):
                key_id = str(key.get("id", ""))
                if not NAME.match(key_id):
                    raise ProducersFileError(f"{where}: a key id is letters, digits and ._:- (at most 64)")
                if key_id in keys:
                    raise ProducersFileError(f"{where}: key {key_id} is given twice")
                keys[key_id] = Key(
                    key_id,
                    public_key(str(key.get("public_key", "")), f"{where}.keys.{key_id}"),
                    _instant(key.get("valid_from"), f"{where}.keys.{key_id}.valid_from"),
                    _instant(key["revoked_at"], f"{where}.keys.{key_id}.revoked_at") if "revoked_at" in key else None,
                )
            facilities = entry.get("facilities")
            prefix = entry.get("id_prefix")
            if prefix is not None and (not isinstance(prefix, str) or not prefix):
                raise ProducersFileError(f"{where}.id_prefix: a non-empty string is required")
            producers[name] = Producer(
                name,
                frozenset(_names(entry.get("events"), f"{where}.events")),
                frozenset(_names(entry.get("regions"), f"{where}.regions")),
                None if facilities is None else frozenset(_names(facilities, f"{where}.facilities")),
                keys,
                prefix,
            )
        unprefixed = sorted(name for name, producer in producers.items() if producer.id_prefix is None)
        if len(unprefixed) > 1:
            raise ProducersFileError(
                f"{source}: producers {', '.join(unprefixed)} have no id_prefix: at most one producer of a file goes "
                "without one (none a prefix of another's), so that no producer can send an event under an event_id "
                "another will use"
            )
        prefixes = sorted((p.id_prefix, p.name) for p in producers.values() if p.id_prefix is not None)
        for (first, one), (second, other) in zip(prefixes, prefixes[1:]):
            if second.startswith(first):
                raise ProducersFileError(f"{source}: the id_prefix of {one} is a prefix of {other}'s: ids overlap")
        return cls(producers, source)

    def id_problem(self, producer: Producer, event_id: str) -> str | None:
        """Event ids are the producer's own: each producer's start with its prefix, none a prefix of another's
        (`parse`); the one producer of a file that may go without a prefix sends no id in another's. So an id is
        one producer's only, and none can take an id another will send."""
        if producer.id_prefix is not None:
            if not event_id.startswith(producer.id_prefix):
                return f"producer {producer.name}'s event_ids start with {producer.id_prefix!r}"
            return None
        for other in self.producers.values():
            if other.id_prefix is not None and event_id.startswith(other.id_prefix):
                return f"event_ids starting with {other.id_prefix!r} are producer {other.name}'s"
        return None

    def admit(self, item: Incoming, now: datetime) -> None:
        """Turn `item` (an `Incoming` that decoded) into refused input unless what it claims proves it was sent by
        a producer allowed to send it. Input that did not decode stays refused as it was."""
        if item.event is None:
            return
        signed = item.claimed
        problem = self.problem(item.event, signed, now)
        if problem is None:
            assert signed is not None  # `problem` refuses input that is not signed
            item.signed = replace(signed, at=now)
        else:
            item.error = self.refusal(item, problem)
            item.event = None

    @staticmethod
    def refusal(item: Incoming, problem: str) -> Unauthorized:
        """`item` refused as unauthorized for `problem`: kept with its payload as sent and the producer it claimed."""
        signed = item.signed or item.claimed
        claimed = signed.producer if signed is not None and signed.producer else "none"
        detail = f"{problem} (claimed producer: {claimed}); kept, never applied"
        return Unauthorized(detail, item.raw, None if item.event is None else item.event.event_id)

    def visit_bound(self, item: Incoming) -> Producer | None:
        """The producer that sent `item` when it is restricted to facilities and `item` names a visit of one
        without naming the facility (`NAMES_A_VISIT`): the visit's facility must then be one of its own."""
        event, signed = item.event, item.signed
        if event is None or signed is None or event.event_type not in NAMES_A_VISIT:
            return None
        producer = self.producers.get(signed.producer or "")
        return producer if producer is not None and producer.facilities is not None else None

    def problem(self, event: EventBase, signed: Signed | None, now: datetime) -> str | None:
        if signed is None or not signed.producer or not signed.key_id or not signed.signature:
            return "unsigned: no producer, key id or signature"
        producer = self.producers.get(signed.producer)
        if producer is None:
            return f"unknown producer {signed.producer}"
        wrong = self.check_signature(signed, now)
        if wrong is not None:
            return wrong
        return producer.may_send(event) or self.id_problem(producer, event.event_id)

    def check_signature(self, signed: Signed, when: datetime) -> str | None:
        """Why `signed` does not verify under a key of its producer valid at `when`, or None when it does."""
        producer = self.producers.get(signed.producer or "")
        if producer is None:
            return f"unknown producer {signed.producer}"
        key = producer.keys.get(signed.key_id or "")
        if key is None:
            return f"producer {producer.name} has no key {signed.key_id}"
        if not key.valid_at(when):
            return f"key {key.key_id} of producer {producer.name} is not valid at {when.isoformat()}"
        if not key.verifier.verifies(signed.signature or b"", event_message(producer.name, key.key_id, signed.value)):
            return f"signature does not verify under key {key.key_id} of producer {producer.name}"
        return None


# -- keys ------------------------------------------------------------------------------------------------------------


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ProducersFileError(f"{path}: not an unencrypted PEM private key ({error})") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ProducersFileError(f"{path}: not an Ed25519 key")
    return key


def public_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key(text: str, where: str = "public key") -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise ProducersFileError(f"{where}: not the base64 of a 32-byte Ed25519 public key") from error
    if not usable(raw):
        raise ProducersFileError(
            f"{where}: not a usable Ed25519 public key (a point of small order, or not canonically encoded): "
            "signatures for any message could be made under it without a private key"
        )
    return key


class Signer:
    """A producer's side: signs record values with one of its keys."""

    def __init__(self, producer: str, key_id: str | None, key: Ed25519PrivateKey):
        """`key_id`: as the producers file names the key; by default its fingerprint (`key_fingerprint`)."""
        key_id = key_id or key_fingerprint(key.public_key())
        if not NAME.match(producer) or not NAME.match(key_id):
            raise ProducersFileError("a producer id and a key id are letters, digits and ._:- (at most 64)")
        self.producer, self.key_id = producer, key_id
        self._signing = Signing(key)

    def __reduce__(self) -> tuple:
        """To another process (a worker of `ingest --workers`) with the key the command loaded, not read again: a
        pickled Signer holds the private key."""
        return (_signer_of_seed, (self.producer, self.key_id, self._signing.seed()))

    def signature(self, value: bytes) -> bytes:
        return self._signing.sign(event_message(self.producer, self.key_id, value))

    def sign(self, value: bytes) -> Signed:
        return Signed(self.producer, self.key_id, self.signature(value), value)

    def headers(self, value: bytes) -> dict[str, str]:
        return {
            PRODUCER_HEADER: self.producer,
            KEY_HEADER: self.key_id,
            SIGNATURE_HEADER: base64.b64encode(self.signature(value)).decode(),
        }


def _signer_of_seed(producer: str, key_id: str, seed: bytes) -> Signer:
    return Signer(producer, key_id, Ed25519PrivateKey.from_private_bytes(seed))


def signer_from(producer: str | None, key_file: str | None, key_id: str | None = None) -> Signer:
    if not producer or not key_file:
        raise ProducersFileError("signing needs a producer id and its private key file (--producer, --key)")
    return Signer(producer, key_id, load_private(key_file))


class LedgerSigner:
    """The relay's side: the ledger's own key signs every record it publishes (settlements, movements,
    incentives, rejections), over b"medledger-output-v1" NUL "medledger" NUL key id NUL value. The key id is
    the first 16 hex digits of the sha256 of the public key, so consumers can hold the old and the new key while
    it is rotated."""

    def __init__(self, key: Ed25519PrivateKey):
        self.key_id = key_fingerprint(key.public_key())
        self._signing = Signing(key)

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        signature = self._signing.sign(signed_message(OUTPUT_DOMAIN, LEDGER, self.key_id, value))
        return [
            (PRODUCER_HEADER, LEDGER.encode()),
            (KEY_HEADER, self.key_id.encode()),
            (SIGNATURE_HEADER, base64.b64encode(signature)),
        ]


class LedgerVerifier:
    """A downstream consumer's side: the ledger's public keys (one base64 key a line: more than one while the
    ledger's key is rotated)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]):
        self.keys = {key_fingerprint(key): Verifier(key) for key in keys}
        if not self.keys:
            raise ProducersFileError("no public key of the ledger given")

    @classmethod
    def load(cls, path: str | Path) -> LedgerVerifier:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ProducersFileError(f"{path}: {error}") from error
        if "PRIVATE KEY" in text:
            return cls([load_private(path).public_key()])
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        return cls(public_key(line, str(path)) for line in lines)

    def problem(self, headers: Iterable[tuple[str, bytes]], value: bytes) -> str | None:
        """Why a record is not one the ledger signed, or None when it is."""
        signed = from_headers(headers, value)
        if signed.producer != LEDGER or not signed.key_id or not signed.signature:
            return "not signed by the ledger"
        key = self.keys.get(signed.key_id)
        if key is None:
            return f"signed with key {signed.key_id}, not a key of the ledger"
        if not key.verifies(signed.signature, signed_message(OUTPUT_DOMAIN, LEDGER, signed.key_id, value)):
            return "the ledger's signature does not verify"
        return None


def key_fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def from_headers(headers: Iterable[tuple[str, bytes]], value: bytes) -> Signed:
    """The claim a Kafka record's headers make; what is missing or unreadable is None (and refused)."""
    found: dict[str, bytes] = {}
    for name, content in headers or ():
        if name in (PRODUCER_HEADER, KEY_HEADER, SIGNATURE_HEADER) and name not in found:
            found[name] = content or b""
    producer, key_id = _text(found.get(PRODUCER_HEADER)), _text(found.get(KEY_HEADER))
    try:
        signature = base64.b64decode(found.get(SIGNATURE_HEADER) or b"", validate=True) or None
    except ValueError:
        signature = None
    return Signed(producer, key_id, signature, value)


def key_entry(producer: str, key_id: str | None, key: Ed25519PrivateKey, valid_from: datetime) -> str:
    """The producers-file entry for a new key, as `medledger keys generate` prints it."""
    key_id = key_id or key_fingerprint(key.public_key())
    stamp = valid_from.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'[[producers.{producer}.keys]]\nid = "{key_id}"\npublic_key = "{public_text(key)}"\nvalid_from = {stamp}\n'


def _text(content: bytes | None) -> str | None:
    if not content:
        return None
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if NAME.match(text) else None


def _names(values: object, where: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise ProducersFileError(f"{where}: a list of strings is required")
    return values


def _instant(value: object, where: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ProducersFileError(f"{where}: a date and time with its offset is required (2026-01-01T00:00:00Z)")
    return value


def stored_problem(authority: Authority, row: Sequence[Any]) -> str | None:
    """Why a kept signature (a `db.signatures.stored_signatures` row) does not prove who sent its event: it does
    not verify under the key of its producer valid when it arrived, or the bytes signed are not the event kept."""
    from .intake import decode

    event_id, producer, key_id, signature, signed_bytes, received_at, payload = row
    signed = Signed(producer, key_id, bytes(signature), bytes(signed_bytes), received_at)
    wrong = authority.check_signature(signed, received_at)
    if wrong is not None:
        return wrong
    if payload is None:
        return "kept for an event that is neither in the ledger nor waiting"
    item = decode(signed.value, "signed", event_id)
    if item.event is None or item.event.event_id != event_id or item.payload != payload:
        return "the bytes signed are not the event kept"
    return None
