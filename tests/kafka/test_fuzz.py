"""Valid contract records mixed with mutated ones (bench/fuzz.py) on the real broker: `serve` refuses every bad
record with a reason or acknowledges it as a repeat, and settles the valid records exactly as `settle` settles
them alone. A fixed seed and a few hundred records here; `python bench/fuzz.py --serve N` runs longer."""

from __future__ import annotations

from bench.fuzz import mixed, problems, serve_mixed, settled, valid_lines
from tests.kafka.streams import run

SEED = 20_260_602


def test_serve_refuses_every_mutant_and_settles_the_valid_records_as_alone(settings, database):
    valid = valid_lines(254, SEED)  # the four example files: every kind of event
    mix = mixed(valid, SEED, kafka=True, huge=1)
    assert len(mix.mutants) > 50 and "huge" in mix.kinds() and "empty" not in mix.kinds()
    reference = settled(valid)
    outputs = run(serve_mixed(settings, database, mix, reference, timeout=240))
    assert problems(mix, outputs, reference, ordered=False) == []
