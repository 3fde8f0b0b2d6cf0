"""CPU per event of decoding a generated stream: the contract checked inside pydantic-core against the models'
Python parsers, side by side in one process, alternating (A B A B ...).

    python bench/decode.py --events 40000 --rounds 5

Both parse each line with jiter (duplicate keys refused, numbers as Decimal); "native" then validates with the
derived pydantic-core validator (``decode_line``), "parsers" with the models' own (the refusal path).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402

import jiter  # noqa: E402

from bench.generate import generate  # noqa: E402
from ledger.contract.decode import _ADAPTER, decode_line  # noqa: E402


def _parsers(line: bytes) -> object:
    return _ADAPTER.validate_python(
        jiter.from_json(line, allow_inf_nan=False, catch_duplicate_keys=True, float_mode="decimal")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = [json.dumps(event, separators=(",", ":")).encode() for event in generate(args.events)]
    runs: dict[str, list[float]] = {"parsers": [], "native": []}
    for _ in range(args.rounds):
        for name, decode in (("parsers", _parsers), ("native", decode_line)):
            started = time.process_time()
            for line in lines:
                decode(line)
            runs[name].append((time.process_time() - started) / len(lines) * 1e6)
    for name, times in runs.items():
        print(f"{name:8} {' '.join(f'{t:6.2f}' for t in times)}  median {statistics.median(times):6.2f} µs CPU/event")
    ratio = statistics.median(runs["parsers"]) / statistics.median(runs["native"])
    print(f"parsers / native: {ratio:.2f}x ({len(lines)} events)")


if __name__ == "__main__":
    main()
