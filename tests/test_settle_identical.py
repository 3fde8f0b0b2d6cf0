"""`medledger settle` prints, byte for byte, what the reference release printed for the same input: the four
examples (with and without a parameter file), a generated stream of the four regions with repeats, conflicting
repeats and ids reused across regions, and a file of bad lines of every kind. The expected outputs were produced
by that release (bench/settle_fixtures.py), not by this code; one or more worker processes print the same.

The one deliberate change: input that is not JSON names the line of the file and the column within it where the
parser stopped (the release named line 1, or line 2 column 0 for input that ended early)."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.intake import read_lines
from ledger.spread import settle_file
from policies.parameters import load_parameters

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from settle_fixtures import CASES, FIXTURES, RUN, input_bytes  # noqa: E402

_POSITION = re.compile(r"at line (\d+) column (\d+)")


def expected(name: str) -> bytes:
    return gzip.decompress((FIXTURES / f"{name}.out.gz").read_bytes())


def settled(data: bytes, parameters: Path | None, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-c", RUN, "-", *(["--parameters", str(parameters)] if parameters else []), *extra]
    done = subprocess.run(args, input=data, capture_output=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done


def with_file_positions(output: bytes) -> bytes:
    """The reference output with its JSON parser positions named as this release names them: the file's line
    (the rejection names the line) and the column within it; input that ended early stops at its end."""
    lines = []
    for line in output.splitlines():
        record = json.loads(line)
        detail = record.get("detail", "")
        if record.get("reason") == "invalid_event" and detail.startswith("invalid JSON:"):
            found = _POSITION.search(detail)
            assert found, detail
            column = int(found[2])
            if found[1] == "2" and column == 0:  # the parser ran into the line end
                column = len(record["payload"].encode())
            else:
                assert found[1] == "1", detail
            position = f"at line {record['rejected']} column {column}"
            line = line.replace(found[0].encode(), position.encode(), 1)
        lines.append(line + b"\n")
    return b"".join(lines)


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_settle_prints_what_the_reference_release_printed(name, workers):
    path, parameters = CASES[name]
    done = settled(input_bytes(path), parameters, "--workers", workers)
    want = expected(name)
    if name == "bad-lines":
        assert b"invalid JSON" in want
        want = with_file_positions(want)
    assert done.stdout == want


@pytest.mark.parametrize("name", sorted(CASES))
def test_workers_print_what_the_reference_release_printed_however_short_the_input(name):
    path, parameters = CASES[name]
    out = io.BytesIO()
    chosen = load_parameters(parameters) if parameters else None
    settle_file(read_lines(io.BytesIO(input_bytes(path))), chosen, 3, out.write, spread_from=0)
    want = expected(name)
    assert out.getvalue() == (with_file_positions(want) if name == "bad-lines" else want)


def test_the_guard_covers_repeats_conflicts_and_every_kind_of_refusal():
    outputs = [json.loads(line) for name in CASES for line in expected(name).splitlines()]
    reasons = {record["reason"] for record in outputs if "rejected" in record}
    assert {"invalid_event", "event_id_conflict", "too_large", "duplicate_visit", "member_not_enrolled"} <= reasons
    assert sum("settlement_id" in record for record in outputs) > 1_000
    assert any("movement_id" in record for record in outputs)
    assert any("incentive" in record for record in outputs)
    regions = {record["region"] for record in outputs if "settlement_id" in record}
    assert regions == {"640000", "371000", "320100", "150000"}
