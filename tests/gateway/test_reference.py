"""The reference files: every row checked, a changed file read again, a broken version refused and the last good
one kept; the callers' keys file likewise."""

from __future__ import annotations

import os
import time

import pytest

from gateway.reference import ReferenceError, parse_catalogue, parse_facilities
from gateway.reloading import Reloading
from gateway.signature import Nonces, Signatures, parse_keys, sign
from tests.gateway.his import REFERENCE

HEADER = "fixmedins_code,fixmedins_name,admdvs,level,grade,kind,designated\n"


def test_the_example_files_are_read_whole():
    facilities = parse_facilities((REFERENCE / "facilities.csv").read_text(encoding="utf-8"))
    catalogue = parse_catalogue((REFERENCE / "catalogue.csv").read_text(encoding="utf-8"))
    assert facilities["H32010200011"].level == 3 and facilities["H32010200011"].grade == "A"
    assert catalogue["XR05CBA121-1"].item_class == "02"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("H1,a,320100,4,,general_hospital,1", "level"),
        ("H1,a,320100,1,C,general_hospital,1", "grade"),
        ("H1,a,320100,1,,hospital,1", "kind"),
        ("H1,a,320100,1,,general_hospital,yes", "designated"),
        ("H1,a,320100,1,,general_hospital", "columns"),
    ],
)
def test_a_bad_facility_row_is_refused_naming_it(row, field):
    with pytest.raises(ReferenceError, match=field):
        parse_facilities(HEADER + row + "\n")


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_good(tmp_path):
    path = tmp_path / "facilities.csv"
    path.write_text(HEADER + "H1,a,320100,1,,general_hospital,1\n", encoding="utf-8")
    held = Reloading(path, parse_facilities, look_every=0)
    assert set(held.current) == {"H1"}
    path.write_text(HEADER + "H1,a,320100,1,,general_hospital,1\nH2,b,320100,2,A,general_hospital,1\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert set(held.current) == {"H1", "H2"}
    path.write_text(HEADER + "H3,c,320100,9,,general_hospital,1\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
    assert set(held.current) == {"H1", "H2"}


def test_the_keys_file_wants_a_token_per_facility():
    assert parse_keys('[facilities."H1"]\ntoken = "0123456789abcdef"\n') == {"H1": "0123456789abcdef"}
    with pytest.raises(ValueError, match="16"):
        parse_keys('[facilities."H1"]\ntoken = "short"\n')


def test_a_nonce_is_refused_within_the_window_and_forgotten_after_it():
    nonces = Nonces(window=300)
    assert nonces.first_use("H1", "n", 1000.0)
    assert not nonces.first_use("H1", "n", 1200.0)
    assert nonces.first_use("H2", "n", 1200.0)  # another caller's
    assert nonces.first_use("H1", "n", 1000.0 + 601)


def test_the_signature_is_sha256_of_timestamp_token_nonce_timestamp():
    import hashlib

    assert sign("1700000000", "tok", "abc") == hashlib.sha256(b"1700000000tokabc1700000000").hexdigest()
    signatures = Signatures(lambda: {"H1": "0123456789abcdef"}, clock=lambda: 1_700_000_000.0)
    headers = {
        "x-tif-paasid": "H1",
        "x-tif-timestamp": "1700000000",
        "x-tif-nonce": "n1",
        "x-tif-signature": sign("1700000000", "0123456789abcdef", "n1"),
    }
    assert signatures.caller(headers) == "H1"


def test_a_registration_is_forgotten_a_day_after_it_was_made():
    from datetime import datetime

    from gateway.counter import KEEP, Counter, Registration

    counter = Counter()
    old = counter.register(Registration("M1", "H1", "320100", "P1", "310", datetime(2023, 1, 1), registered_at=0.0))
    again = counter.register(Registration("M1", "H1", "320100", "P1", "310", datetime(2023, 1, 2), registered_at=1.0))
    assert again is old  # a retried 2201 gets what it registered
    counter.register(Registration("M2", "H1", "320100", "P1", "310", datetime(2023, 1, 1), registered_at=KEEP + 0.5))
    assert set(counter.visits) == {"M2"}


def test_the_gateway_command_says_which_setting_it_misses(monkeypatch):
    from typer.testing import CliRunner

    from consumers.cli import app

    monkeypatch.delenv("MEDLEDGER_GATEWAY_KEYS", raising=False)
    monkeypatch.setenv("MEDLEDGER_GATEWAY_REFERENCE", str(REFERENCE))
    result = CliRunner().invoke(app, ["gateway"])
    assert result.exit_code == 2
    assert "MEDLEDGER_GATEWAY_KEYS is not set" in result.output
