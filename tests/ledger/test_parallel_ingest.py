"""`ingest --workers N` shares a file out in one parse: every line is marked for one worker, and a worker keeps
its lines by number without reading the others."""

import pytest

from ledger import parallel_ingest
from ledger.intake import Oversized
from ledger.parallel_ingest import marked, shares
from ledger.runtime import THRESHOLDS
from ledger.streams import NO_REGION


def write(tmp_path, lines):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines))
    return str(path)


LINES = [
    b'{"region": "640100", "n": 1}\n',
    b'{"region": "371000", "n": 2}\n',
    b"{not json\n",
    b'{"region": "640100", "n": 3}\n',
    b'{"region": "320100", "n": 4}\n',
    b'{"region": "640100", "n": 5}\n',
]


def test_each_line_is_marked_for_the_worker_of_its_region(tmp_path):
    split = shares(write(tmp_path, LINES), 2)
    assert split.groups == [frozenset({"640100", NO_REGION}), frozenset({"371000", "320100"})]
    assert list(split.marks) == [0, 1, 0, 0, 1, 0]


def test_a_worker_keeps_its_lines_by_number_and_parses_none(tmp_path, monkeypatch):
    split = shares(write(tmp_path, LINES), 2)

    def parsed(line):
        raise AssertionError("a worker parsed a line to find its region")

    monkeypatch.setattr(parallel_ingest, "region_of", parsed)
    mine = list(marked(iter(LINES), split.marks, 1))
    assert mine == [b"", LINES[1], b"", b"", LINES[4], b""]


def test_an_oversized_line_is_kept_by_the_worker_that_refuses_unreadable_input(tmp_path):
    huge = Oversized(b"{", 10**9, "0" * 64)
    assert parallel_ingest.region_of(huge) == NO_REGION
    assert list(marked(iter([huge, LINES[1]]), bytes([0, 1]), 0)) == [huge, b""]


def test_marks_and_lines_out_of_step_are_an_error():
    with pytest.raises(ValueError):
        list(marked(iter(LINES), bytes(3), 0))


def test_the_workers_collect_garbage_as_the_command_does():
    """Left at Python's default (a collection every 700 objects), each worker walked its batch's live objects over
    and over: two workers spent almost twice the CPU an event of one process."""
    with parallel_ingest.ingest_pool(1) as pool:
        thresholds, frozen = pool.submit(_collector).result()
    assert thresholds == THRESHOLDS
    assert frozen > 0  # what was imported when the worker started is never walked again


def _collector():
    import gc

    return gc.get_threshold(), gc.get_freeze_count()
