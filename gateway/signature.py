"""The platform's request signature. Each caller (a facility, `x-tif-paasid` = its fixmedins_code) holds a token;
it sends `x-tif-timestamp` (unix seconds), `x-tif-nonce` and `x-tif-signature` = hex SHA-256 of
`timestamp + token + nonce + timestamp`. Refused: a header missing, an unknown caller, a wrong signature, a
timestamp more than `WINDOW` seconds away, a nonce the caller already used within the window. An unknown caller is
logged and counted as such but answered exactly as a wrong signature is."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Mapping

from ledger.db.credentials import KNOWN_DEFAULTS

from .errors import Refused

WINDOW = 300  # seconds either side of now
HEADERS = ("x-tif-paasid", "x-tif-timestamp", "x-tif-nonce", "x-tif-signature")
MAX_NONCE = 128
STAMP = re.compile(r"[0-9]{1,12}", re.ASCII)  # unix seconds in ASCII digits (str.isdigit also takes '²')
WRONG = ("signature_invalid", "x-tif-signature does not match the caller's token")


def parse_keys(text: str) -> dict[str, str]:
    """MEDLEDGER_GATEWAY_KEYS: `[facilities."H32010000001"] token = "..."`, one table per caller."""
    data = tomllib.loads(text)
    facilities = data.get("facilities")
    if not isinstance(facilities, dict):
        raise ValueError('keys file: a [facilities."<fixmedins_code>"] table per caller is expected')
    tokens = {}
    for code, entry in facilities.items():
        token = entry.get("token") if isinstance(entry, dict) else None
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError(f"keys file: facilities.{code}.token must be a string of at least 16 characters")
        if "change-me" in token.lower() or token.lower() in KNOWN_DEFAULTS:
            raise ValueError(
                f"keys file: facilities.{code}.token is an example's or a known default: give it a random one"
            )
        tokens[code] = token
    return tokens


def sign(timestamp: str, token: str, nonce: str) -> str:
    return hashlib.sha256(f"{timestamp}{token}{nonce}{timestamp}".encode()).hexdigest()


class Nonces:
    """Nonces seen within the window, per caller; each is forgotten once its timestamp has left the window (a
    request carrying it again would then be refused for its timestamp anyway)."""

    def __init__(self, window: int = WINDOW):
        self.window = window
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # in the order they arrived

    def first_use(self, caller: str, nonce: str, now: float) -> bool:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at <= 2 * self.window:
                break
            del self._seen[key]
        key = (caller, nonce)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class Signatures:
    def __init__(self, tokens: Callable[[], dict[str, str]], clock: Callable[[], float] = time.time):
        self.tokens, self.clock = tokens, clock
        self.nonces = Nonces()
        # An unknown caller's signature is checked against this, so that it is answered as, and as fast as, a
        # wrong signature: a caller cannot learn which fixmedins_codes hold a key.
        self._decoy = secrets.token_hex(32)

    def caller(self, headers: Mapping[str, str]) -> str:
        """The verified caller's fixmedins_code, or `Refused`."""
        missing = [name for name in HEADERS if not headers.get(name)]
        if missing:
            raise Refused("signature_missing", f"header {missing[0]} is missing")
        caller, stamp, nonce, signature = (headers[name] for name in HEADERS)  # each present, as checked
        token = self.tokens().get(caller)
        if len(nonce) > MAX_NONCE or not nonce.isprintable():
            raise Refused("signature_invalid", f"x-tif-nonce must be printable and at most {MAX_NONCE} characters")
        if not STAMP.fullmatch(stamp):
            raise Refused("timestamp_invalid", "x-tif-timestamp must be unix seconds")
        expected = sign(stamp, self._decoy if token is None else token, nonce).encode()
        matches = hmac.compare_digest(expected, signature.lower().encode("utf-8", "surrogateescape"))
        if token is None:
            raise Refused("unknown_caller", f"x-tif-paasid {caller} holds no key", answered=WRONG)
        if not matches:
            raise Refused(*WRONG)
        now = self.clock()
        if abs(now - int(stamp)) > WINDOW:
            raise Refused("timestamp_out_of_window", f"x-tif-timestamp {stamp} is more than {WINDOW} s from now")
        if not self.nonces.first_use(caller, nonce, now):
            raise Refused("nonce_replayed", f"x-tif-nonce {nonce} was already used")
        return caller
