"""Where `medledger settle`'s CPU time goes, per stage, in one process.

    python bench/generate.py --events 121706 > /tmp/stream.jsonl
    python bench/settle_stages.py /tmp/stream.jsonl

Each stage's calls are timed with `time.process_time` (decode, the engine, the output records, their encoding);
the rest is reading lines, repeats and the tally, and the timers' own cost. Output goes nowhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ledger.intake as intake  # noqa: E402
import ledger.offline as offline  # noqa: E402
import ledger.spread as spread  # noqa: E402
from ledger.runtime import tune_garbage_collector  # noqa: E402
from policies.engine import Engine  # noqa: E402
from policies.parameters import load_parameters  # noqa: E402

SPENT = {"decode": 0.0, "engine": 0.0, "output records": 0.0, "encoded": 0.0}


def timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[stage] += time.process_time() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("--parameters", type=Path, default=ROOT / "examples/params/150000-illustrative.toml")
    args = parser.parse_args()
    intake.decode = timed("decode", intake.decode)  # as from_numbered finds it
    Engine.apply = timed("engine", Engine.apply)
    offline.wire = timed("output records", offline.wire)
    spread.encoded = timed("encoded", spread.encoded)
    tune_garbage_collector()  # as the medledger command does
    parameters = load_parameters(args.parameters)
    started = time.process_time()
    with open(args.events, "rb") as source, open("/dev/null", "wb") as out:
        tally = spread.settle_file(intake.read_lines(source), parameters, 1, out.write)
    total = time.process_time() - started
    events = tally.read
    for stage, spent in [*SPENT.items(), ("the rest", total - sum(SPENT.values()))]:
        print(f"{stage:15} {spent / events * 1e6:6.2f} µs CPU an event  {spent / total:6.1%}")
    print(f"{'in all':15} {total / events * 1e6:6.2f} µs CPU an event ({events} events)")


if __name__ == "__main__":
    main()
