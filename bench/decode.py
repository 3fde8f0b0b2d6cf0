"""CPU per event of decoding a generated stream three ways, side by side in one process, alternating (A B C A B C
...): the models' Python parsers, the contract checked inside pydantic-core, and msgspec derived from the models.

    python bench/decode.py --events 40000 --rounds 5

"parsers" and "native" parse each line with jiter (duplicate keys refused, numbers as Decimal), then validate with
the models' own validator (the refusal path) or the derived pydantic-core one; "fast" is ``decode_line``: msgspec
decoding the bytes into the models' instances (ledger/contract/fast.py), the models reading what it leaves.
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
from ledger.contract.decode import _ADAPTER, _NATIVE, decode_line  # noqa: E402


def _parsers(line: bytes) -> object:
    return _ADAPTER.validate_python(
        jiter.from_json(line, allow_inf_nan=False, catch_duplicate_keys=True, float_mode="decimal")
    )


def _native(line: bytes) -> object:
    return _NATIVE.validate_python(
        jiter.from_json(line, allow_inf_nan=False, catch_duplicate_keys=True, float_mode="decimal")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = [json.dumps(event, separators=(",", ":")).encode() for event in generate(args.events)]
    runs: dict[str, list[float]] = {"parsers": [], "native": [], "fast": []}
    for _ in range(args.rounds):
        for name, decode in (("parsers", _parsers), ("native", _native), ("fast", decode_line)):
            started = time.process_time()
            for line in lines:
                decode(line)
            runs[name].append((time.process_time() - started) / len(lines) * 1e6)
    for name, times in runs.items():
        print(f"{name:8} {' '.join(f'{t:6.2f}' for t in times)}  median {statistics.median(times):6.2f} µs CPU/event")
    medians = {name: statistics.median(times) for name, times in runs.items()}
    print(
        f"parsers / native: {medians['parsers'] / medians['native']:.2f}x, native / fast: "
        f"{medians['native'] / medians['fast']:.2f}x ({len(lines)} events)"
    )


if __name__ == "__main__":
    main()
