"""A scheme's producers, each with its own key and permissions, and records as the broker would deliver them."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from consumers.incoming import incoming
from ledger.authority import Authority, Signer, generate, key_fingerprint, public_text
from ledger.db.projection_store import PROJECTIONS
from ledger.service import LedgerService
from tests.ledger.helpers import fetch

HOSPITAL_FACILITY = "H32010000001"
OTHER_FACILITY = "H32010000002"
SINCE = datetime(2020, 1, 1, tzinfo=UTC)

# Who may say what, as a scheme sets it up: the enrolment system its members and families, the contribution system
# the money paid in, a hospital its own visits and payments in its region (and another hospital its own), the bureau
# year closes and chronic certifications.
PERMISSIONS = {
    "enrolment": {
        "events": [
            "member.enrolled",
            "member.retired",
            "member.insurance_type_changed",
            "member.contribution_interrupted",
            "member.contribution_resumed",
            "member.terminated",
            "family.*",
        ],
        "regions": ["*"],
    },
    "contributions": {
        "events": ["account.contribution_posted", "account.pension_paid", "account.external_fund_payment"],
        "regions": ["*"],
    },
    "hospital": {
        "events": ["visit.submitted", "visit.reversed", "account.payment_requested"],
        "regions": ["320100"],
        "facilities": [HOSPITAL_FACILITY],
    },
    "other_hospital": {
        "events": ["visit.submitted", "visit.reversed", "account.payment_requested"],
        "regions": ["320100"],
        "facilities": [OTHER_FACILITY],
    },
    "bureau": {
        "events": ["period.year_closed", "member.chronic_certified", "member.chronic_cap_adjusted"],
        "regions": ["*"],
    },
}


def own_prefix(producer: str) -> str:
    """The id_prefix a producer of the test scheme numbers its events under."""
    return f"{producer}-"


BUILT_ID = re.compile(r"^ev-\d{5}$")  # an id as `tests.builders` numbers events


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


@dataclass
class Scheme:
    """Every producer's signer, and the producers file that names their public keys."""

    signers: dict[str, Signer]
    text: str
    outsider: Signer  # a key no producers file names, claiming to be the enrolment system

    @classmethod
    def make(cls, revoked: dict[str, datetime] | None = None, prefixes: dict[str, str | None] | None = None) -> Scheme:
        """Every producer with its own id_prefix (`own_prefix`, unless `prefixes` names another)."""
        prefixes = {name: own_prefix(name) for name in PERMISSIONS} | (prefixes or {})
        signers, parts = {}, []
        for name, allowed in PERMISSIONS.items():
            key = generate()
            signers[name] = Signer(name, None, key)
            parts.append(f"[producers.{name}]")
            parts.extend(f"{field} = {_toml_list(values)}" for field, values in allowed.items())
            if prefixes[name] is not None:
                parts.append(f"id_prefix = {json.dumps(prefixes[name])}")
            parts.append(f"[[producers.{name}.keys]]")
            parts.append(f'id = "{key_fingerprint(key.public_key())}"')
            parts.append(f'public_key = "{public_text(key)}"')
            parts.append(f"valid_from = {SINCE.strftime('%Y-%m-%dT%H:%M:%SZ')}")
            if revoked and name in revoked:
                parts.append(f"revoked_at = {revoked[name].strftime('%Y-%m-%dT%H:%M:%SZ')}")
            parts.append("")
        # the enrolment system's producer id and key id, with a key of its own
        return cls(signers, "\n".join(parts), Signer("enrolment", signers["enrolment"].key_id, generate()))

    def authority(self) -> Authority:
        import tomllib

        return Authority.parse(tomllib.loads(self.text), "test producers")


class Topic:
    """Records as the event topic delivers them, with the headers their producer set."""

    def __init__(self) -> None:
        self.offset = 0

    def record(self, value: str, headers: dict[str, str] | None = None) -> ConsumerRecord:
        self.offset += 1
        encoded = value.encode()
        pairs = tuple((name, content.encode()) for name, content in (headers or {}).items())
        return ConsumerRecord("events", 0, self.offset, 0, 0, None, encoded, None, 0, len(encoded), pairs)

    def signed(self, signer: Signer, event: dict) -> ConsumerRecord:
        """`event` as `signer` sends it. An id as the builders number events (`ev-00001`) is first made the
        producer's own (`own_prefix`), in `event` itself, as the producer would number it; any other id is sent
        as it is (an attempt on another producer's ids, say)."""
        if BUILT_ID.match(event["event_id"]):
            event["event_id"] = own_prefix(signer.producer) + event["event_id"]
        value = json.dumps(event, ensure_ascii=False)
        return self.record(value, signer.headers(value.encode()))


def deliver(db, authority: Authority, records, clock=None, batch_size: int = 50) -> list[dict]:
    """The records through the consumer's decoding and the ledger, as `serve` settles them (each batch while the
    one before it commits)."""
    published: list[dict] = []

    async def run():
        now = clock or (lambda: datetime.now(UTC))
        async with LedgerService(db, authority=authority, clock=now, batch_size=batch_size) as service:
            await service.ingest([incoming(record) for record in records], published.extend)

    asyncio.run(run())
    return published


def projections(db) -> dict[str, list]:
    """Every projection row and every ledger movement and settlement: what balances and reports are made of."""
    state = {table: sorted(map(tuple, fetch(db, f"SELECT * FROM {table}")), key=repr) for table in PROJECTIONS}
    for table in ("ledger_movements", "ledger_settlements", "ledger_incentives"):
        state[table] = sorted(map(tuple, fetch(db, f"SELECT * FROM {table}")), key=repr)
    return state


def refused(db, reason: str = "unauthorized") -> list:
    return fetch(
        db, "SELECT event_id, detail, payload FROM ledger_rejections WHERE reason = $1 ORDER BY rejection_id", reason
    )


def verified(db, authority: Authority):
    """`replay --verify` as the command runs it: the ledger re-derived, and every kept signature checked again."""
    from ledger.replay import Replayer

    return asyncio.run(Replayer(db, batch_size=40).verify(authority))
