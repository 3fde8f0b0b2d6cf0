"""Valid contract lines mixed with mutated ones (bench/fuzz.py), through `settle` and `ingest`: nothing raises,
every bad line is refused with a reason or acknowledged as a repeat, and the valid lines settle exactly as they
settle alone. A fixed seed and a modest count here; `python bench/fuzz.py` runs longer."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bench.fuzz import Mutant, ingest_mixed, mixed, problems, settle_mixed, settled, valid_lines

SEED = 20_260_601


def test_settle_refuses_every_mutant_and_settles_the_valid_lines_as_alone():
    valid = valid_lines(3_000, SEED)
    mix = mixed(valid, SEED, huge=2)
    assert len(mix.mutants) > 500 and {"huge", "empty", "repeat", "reused_id", "nul_escape"} <= set(mix.kinds())
    assert problems(mix, settle_mixed(mix), settled(valid)) == []


def test_ingest_refuses_every_mutant_and_settles_the_valid_lines_as_alone(database):
    valid = valid_lines(300, SEED)
    mix = mixed(valid, SEED + 1, huge=1)
    assert len(mix.mutants) > 50
    stats, published = asyncio.run(ingest_mixed(database, mix, batch_size=40))
    assert problems(mix, published, settled(valid)) == []
    assert stats.duplicates == mix.repeats


def test_the_check_finds_a_bad_line_applied_a_refusal_missing_and_a_valid_line_settled_otherwise():
    valid = valid_lines(120, SEED)
    mix = mixed(valid, SEED)
    reference = settled(valid)
    outputs = settle_mixed(mix)
    assert problems(mix, outputs, reference) == []
    # a mutant the contract accepts: a valid visit under a fresh id, said to be refused
    visit = next(line for line in valid if b'"visit.submitted"' in line)
    accepted = replace(mix, lines=[*mix.lines, visit.replace(b'"event_id": "', b'"event_id": "fz-x')])
    accepted.mutants = [*mix.mutants, Mutant("wrong_type", accepted.lines[-1], "refused", "fz-x")]
    assert problems(accepted, settle_mixed(accepted), reference)
    refusal = next(i for i, r in enumerate(outputs) if str(r.get("rejected")).startswith("fz-"))
    assert problems(mix, outputs[:refusal] + outputs[refusal + 1 :], reference)
    assert problems(mix, outputs[:-1], reference)  # the last valid output missing
