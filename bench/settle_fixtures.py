"""The inputs of the settle output guard (tests/test_settle_identical.py), and what a given release printed for them.

python bench/settle_fixtures.py --commit 7e81e4a

Writes into tests/fixtures/settle/: the inputs that are not in examples/ (a generated mixed stream of the four
regions with repeats, conflicting repeats and an event id reused across regions; a file of bad lines of every
kind), and for each input `<name>.out.gz`, the bytes `medledger settle` of COMMIT printed. COMMIT is checked out in
a git worktree under /tmp and run with this python; the worktree is removed at the end. The expected outputs are
never produced by the code of the working tree.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "settle"
EXAMPLES = ROOT / "examples"
PARAMETERS = EXAMPLES / "params" / "150000-illustrative.toml"

# name -> (input file, parameter file or None)
CASES = {
    **{f"example-{path.stem}": (path, None) for path in sorted(EXAMPLES.glob("*.jsonl"))},
    "example-inner-mongolia-params": (EXAMPLES / "inner-mongolia.jsonl", PARAMETERS),
    "mixed": (FIXTURES / "mixed.jsonl.gz", None),
    "mixed-params": (FIXTURES / "mixed.jsonl.gz", PARAMETERS),
    "bad-lines": (FIXTURES / "bad-lines.jsonl.gz", None),
}

RUN = "import sys; sys.argv = ['medledger', 'settle', *sys.argv[1:]]; from consumers.cli import main; main()"


def mixed_stream(events: int = 3_000, seed: int = 11) -> list[bytes]:
    """bench/generate.py's stream, with repeats (the same bytes, the same values written another way), conflicting
    repeats in the same and in another region, and ids reused across regions, at fixed places."""
    sys.path.insert(0, str(ROOT / "bench"))
    from generate import generate

    lines = [json.dumps(event, ensure_ascii=False) for event in generate(events, seed)]
    rng = random.Random(seed)
    out: list[str] = []
    regions = ["640000", "371000", "320100", "150000"]
    for number, line in enumerate(lines):
        out.append(line)
        if number % 97 == 13 and number > 100:
            earlier = json.loads(lines[rng.randrange(number)])
            kind = number % 4
            if kind == 0:
                out.append(json.dumps(earlier, ensure_ascii=False))  # a plain repeat
            elif kind == 1:
                out.append(json.dumps(earlier, ensure_ascii=False, indent=None, separators=(",", ":")))
            elif kind == 2:  # the same id for another event of another region: a conflicting repeat
                earlier["region"] = regions[(regions.index(earlier["region"]) + 1) % 4]
                out.append(json.dumps(earlier, ensure_ascii=False))
            else:  # the same id, the same region, one value changed
                earlier["occurred_at"] = earlier["occurred_at"].replace("T10:", "T11:")
                out.append(json.dumps(earlier, ensure_ascii=False))
    return [line.encode() + b"\n" for line in out]


def _event(**fields) -> dict:
    base = {
        "event_id": "bad-0001",
        "event_type": "member.enrolled",
        "schema_version": 1,
        "occurred_at": "2023-01-01T10:00:00+08:00",
        "region": "320100",
        "member_id": "32010619850226X001",
        "insurance_type": "employee",
        "person_type": "in_service",
        "birth_date": "1985-02-26",
        "effective_date": "2023-01-01",
        "contribution_base": "9000.00",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


def _visit(**fields) -> dict:
    visit = {
        "event_id": "bad-v001",
        "event_type": "visit.submitted",
        "schema_version": 1,
        "occurred_at": "2023-03-01T10:00:00+08:00",
        "region": "320100",
        "member_id": "32010619850226X001",
        "visit_id": "V-BAD-1",
        "facility_id": "H1",
        "facility_level": 3,
        "facility_grade": "A",
        "facility_kind": "general_hospital",
        "designated": True,
        "visit_kind": "general",
        "inpatient_period": False,
        "out_of_area": "none",
        "pay_with_account": True,
        "items": [
            {
                "item_code": "X1",
                "category": "drug",
                "amount": "300.00",
                "out_of_catalog_amount": "0.00",
                "pre_self_pay_amount": "0.00",
            }
        ],
    }
    visit.update(fields)
    return visit


NINGXIA_JUNE = {"occurred_at": "2023-06-01T10:00:00+08:00", "effective_date": "2023-06-01"}


def bad_lines() -> list[bytes]:
    """Lines of every kind settle refuses or acknowledges, between events it settles."""

    def j(value) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode() + b"\n"

    enrolled = _event()
    lines = [
        j(enrolled),
        b'{"event_id": "broken", "event_type": \n',  # bad JSON
        b'{"event_id": "broken", "event_type": \n',  # the same unreadable input again
        b'{"event_id": "x" "event_type": "member.enrolled"}\n',  # bad JSON mid-line
        b"\n",
        b"   \n",
        b"\xff\xfe not utf-8\n",
        b'{"event_id": "sur", "x": "\\ud800"}\n',
        b"[1, 2, 3]\n",
        b"42\n",
        b'"a string"\n',
        b"null\n",
        j(_event(event_id="bad-0002", contribution_base=-5)),
        j(_event(event_id="bad-0003", contribution_base="12.345")),
        j(_event(event_id="bad-0004", insurance_type="martian")),
        j(_event(event_id="bad-0005", region="999999")),
        j(_event(event_id="bad-0006", event_type="member.teleported")),
        j(_event(event_id="bad-0007", birth_date=...)),
        j(_event(event_id="bad-0008", unknown_field=1)),
        j(_event(event_id="bad-0009", schema_version=True)),
        j(_event(event_id="bad\u00000010")),
        j(_event(event_id="x" * 200)),
        b'{"event_id": "bad-0011", "event_id": "bad-0012", "event_type": "member.enrolled"}\n',  # duplicate key
        b'{"event_id": "bad-0013", "contribution_base": 1.5e400}\n',
        j(enrolled),  # a repeat: acknowledged, not applied twice
        j({**enrolled, "contribution_base": "9000"}),  # the same values written another way
        j({**enrolled, "contribution_base": "9100.00"}),  # a conflicting repeat
        j({**enrolled, "contribution_base": "9100.00"}),  # the same conflicting input again
        j({**enrolled, "region": "640000"}),  # a conflicting repeat in another region
        j(_visit()),
        j(_visit()),
        j(_visit(event_id="bad-v002", visit_id="V-BAD-2", member_id="nobody")),  # no such member
        j(_visit(event_id="bad-v003", items=[])),
        j(_visit(event_id="bad-v004", items=[{**_visit()["items"][0], "amount": 300.5}])),  # a float
        j(_visit(event_id="bad-v005", visit_id="V-BAD-1")),  # the visit settled already
        # An id first given to invalid input, then to a valid event of another region: not a repeat.
        j(_event(event_id="bad-reused", region="150000", contribution_base="x")),
        j(_event(event_id="bad-reused", region="640000", member_id="64010619850226X001", **NINGXIA_JUNE)),
        j(_event(event_id="bad-reused", region="640000", member_id="64010619850226X001", **NINGXIA_JUNE)),
        j(_event(event_id="bad-reused", region="371000")),
        b'{"event_id": "crlf", "event_type": "member.enrolled"}\r\n',
        b'{"event_id": "big", "padding": "' + b"x" * (1 << 20) + b'"}\n',  # oversized
        b'{"event_id": "big", "padding": "' + b"x" * (1 << 20) + b'"}\n',  # oversized again
        j({"event_id": "bad-rev", **{k: v for k, v in _visit().items() if k not in ("event_id",)}}),
        j(
            {
                "event_id": "bad-rev2",
                "event_type": "visit.reversed",
                "schema_version": 1,
                "occurred_at": "2023-03-02T10:00:00+08:00",
                "region": "320100",
                "member_id": "32010619850226X001",
                "visit_id": "V-NONE",
                "reason": "never settled",
            }
        ),
        b'{"event_id": "tail", "event_type": "member.enrolled"',  # bad JSON, the last line, no line end
    ]
    return lines


def write_inputs() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, lines in (("mixed", mixed_stream()), ("bad-lines", bad_lines())):
        with gzip.GzipFile(FIXTURES / f"{name}.jsonl.gz", "wb", mtime=0) as out:
            out.write(b"".join(lines))


def input_bytes(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def settle_output(python: str, code: Path, data: bytes, parameters: Path | None, *extra: str) -> bytes:
    """What `medledger settle -` of the tree at `code` prints for `data`."""
    args = [python, "-c", RUN, "-", *(["--parameters", str(parameters)] if parameters else []), *extra]
    done = subprocess.run(
        args, input=data, capture_output=True, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"}, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"settle failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="7e81e4a", help="the release whose output is expected")
    args = parser.parse_args()
    write_inputs()
    with tempfile.TemporaryDirectory(prefix="medledger-fixtures-") as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.commit], check=True)
        try:
            for name, (path, parameters) in CASES.items():
                output = settle_output(sys.executable, tree, input_bytes(path), parameters)
                with gzip.GzipFile(FIXTURES / f"{name}.out.gz", "wb", mtime=0) as out:
                    out.write(output)
                print(f"{name}: {len(output.splitlines())} lines", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    (FIXTURES / "COMMIT").write_text(args.commit + "\n")


if __name__ == "__main__":
    main()
