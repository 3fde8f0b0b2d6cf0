"""Settlements per second of the pure engine over a generated stream of mixed events across the four regions.

    python bench/engine_throughput.py --events 200000

Decoding happens before the clock starts: the figure is the engine alone (policies/), on one core. A second
figure times the whole offline path (decode + engine + output records), as `medledger settle` runs it.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.generate import generate  # noqa: E402
from ledger.codec import dumps  # noqa: E402
from ledger.contract import decode_event  # noqa: E402
from ledger.offline import settle_stream  # noqa: E402
from ledger.runtime import tune_garbage_collector  # noqa: E402
from policies.engine import Engine  # noqa: E402
from policies.outputs import Settlement  # noqa: E402
from policies.parameters import load_parameters  # noqa: E402
from policies.rejection import Rejected  # noqa: E402

PARAMETERS = Path(__file__).resolve().parents[1] / "examples/params/150000-illustrative.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    parameters = load_parameters(PARAMETERS)
    raw = generate(args.events)
    events = [decode_event(event) for event in raw]
    gc.freeze()  # the decoded input is not the engine's work: keep the collector from walking it again and again
    tune_garbage_collector()  # as the medledger command does

    engine = Engine(parameters)
    settlements = rejected = 0
    started, cpu = time.perf_counter(), time.process_time()
    for seq, event in enumerate(events, start=1):
        try:
            for output in engine.apply(event, seq):
                settlements += isinstance(output, Settlement)
        except Rejected:
            rejected += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"engine: {len(events)} events, {settlements} settlements, {rejected} rejected in {elapsed:.2f} s")
    print(f"engine: {settlements / elapsed:,.0f} settlements/s, {len(events) / elapsed:,.0f} events/s")
    print(f"engine: {cpu / len(events) * 1e6:.1f} µs CPU an event")

    import json

    lines = [json.dumps(event, separators=(",", ":")) for event in raw]
    started, cpu = time.perf_counter(), time.process_time()
    written = sum(len(dumps(record)) for record in settle_stream(lines, parameters))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"offline settle path (decode + engine + records + JSON): {len(lines) / elapsed:,.0f} events/s, "
        f"{cpu / len(lines) * 1e6:.1f} µs CPU an event ({written / 1e6:.0f} MB written)"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
