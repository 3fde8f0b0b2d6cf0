"""Keys for tests: a producer allowed everything, and the ledger's own key, made once per test process."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ledger.authority import generate, key_entry, private_pem, public_text

PRODUCER = "test-producer"
SINCE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TestKeys:
    directory: Path
    producers: Path  # the producers file: PRODUCER may send every event of every region
    producer_key: Path
    ledger_key: Path
    ledger_public_key: Path

    def settings(self) -> dict[str, str]:
        """As `consumers.settings.Settings` fields."""
        return {
            "producers": str(self.producers),
            "producer": PRODUCER,
            "producer_key": str(self.producer_key),
            "ledger_key": str(self.ledger_key),
            "ledger_public_key": str(self.ledger_public_key),
        }


@functools.cache
def test_keys() -> TestKeys:
    directory = Path(tempfile.mkdtemp(prefix="medledger-keys-"))
    producer, ledger = generate(), generate()
    (directory / "producer.pem").write_bytes(private_pem(producer))
    (directory / "ledger.pem").write_bytes(private_pem(ledger))
    (directory / "ledger.pub").write_text(public_text(ledger) + "\n")
    entry = key_entry(PRODUCER, None, producer, SINCE)
    (directory / "producers.toml").write_text(f'[producers.{PRODUCER}]\nevents = ["*"]\nregions = ["*"]\n{entry}')
    return TestKeys(
        directory,
        directory / "producers.toml",
        directory / "producer.pem",
        directory / "ledger.pem",
        directory / "ledger.pub",
    )


test_keys.__test__ = False  # a helper: modules that import it are not to collect it as a test
