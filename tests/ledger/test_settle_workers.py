"""`settle --workers N`: regions settled in parallel processes print exactly what one process prints, in input
order, however the regions and the event ids given in them interleave; `settle` says what it did on stderr, and a
line that is not JSON is named by its line and column in the file."""

from __future__ import annotations

import io
import json
import time

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.intake import read_lines
from ledger.spread import ROUND, settle_file
from tests import builders as b

REGIONS = (b.NINGXIA, b.WEIHAI, b.NANJING)


def settled(text: str, workers: int, spread_from: int = 0) -> tuple[bytes, object]:
    """What settle prints for `text`, with `workers` processes however short the text is (`spread_from`)."""
    out = io.BytesIO()
    tally = settle_file(read_lines(io.BytesIO(text.encode())), None, workers, out.write, spread_from)
    return out.getvalue(), tally


def interleaved() -> list[dict]:
    """Members of three regions enrolled, their visits interleaved; then event ids reused across regions: an id
    first given to input the contract refuses and then to a valid event of another region (not a repeat), an
    event repeated under its id in another region (a conflict), the same event repeated as it was."""
    b.fresh()
    events, members = [], {}
    for n, region in enumerate(REGIONS * 3):
        member = f"M{n}-{region}"
        members.setdefault(region, []).append(member)
        on = "2023-06-01" if region == b.NINGXIA else "2023-01-02"
        events.append(b.enrolled(member, region, on=on))
    for day in range(1, 25):
        for region in REGIONS:
            for member in members[region]:
                events.append(b.visit(member, region, on=f"2023-07-{day:02d}", items=b.drug(f"{40 + day}.00")))
    visit = events[-1]
    reused = b.visit(members[b.WEIHAI][0], b.WEIHAI, on="2023-08-01", event_id="shared-1", items=b.drug("12.00"))
    return [
        *events,
        {**visit, "region": b.NINGXIA},  # the event's id again, in another region: refused as a conflict
        {**visit},  # the very event again: acknowledged
        {**reused, "region": b.NANJING, "items": "not a list"},  # refused by the contract: holds no id
        reused,  # a valid event under that id, in another region: settled
        reused,  # and its repeat
        {**reused, "region": b.NINGXIA, "member_id": members[b.NINGXIA][0]},  # a third region: a conflict
        {**reused, "items": b.drug("13.00")},  # its own region, other values: a conflict
    ]


def stream_text(events: list[dict]) -> str:
    return "\n".join(b.as_line(event) for event in events) + "\n"


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_workers_print_what_one_process_prints_with_ids_reused_across_regions(workers):
    text = stream_text(interleaved())
    one, tally = settled(text, 1)
    many, many_tally = settled(text, workers)
    assert many == one
    assert many_tally == tally
    outputs = [json.loads(line) for line in one.splitlines()]
    reasons = [record["reason"] for record in outputs if "rejected" in record]
    assert reasons.count("event_id_conflict") == 3
    assert reasons.count("invalid_event") == 1
    assert tally.duplicates == 2
    (shared,) = [record for record in outputs if record.get("ledger_seq") == len(interleaved()) - 3]
    assert shared["region"] == b.WEIHAI and shared["visit_id"]  # settled once, in its own region


def test_rounds_larger_than_one_hand_over_keep_input_order():
    b.fresh()
    member = "M-ROUNDS"
    events = [b.enrolled(member, b.NANJING, on="2023-01-02"), b.enrolled("M-NX", b.NINGXIA, on="2023-06-01")]
    for n in range(ROUND + 300):
        region, who = (b.NANJING, member) if n % 3 else (b.NINGXIA, "M-NX")
        events.append(b.visit(who, region, on=f"2023-07-{n % 28 + 1:02d}", items=b.drug("5.00")))
    text = stream_text(events)
    one, _ = settled(text, 1)
    assert settled(text, 2)[0] == one
    assert settled(text, 2, spread_from=ROUND)[0] == one
    seqs = [json.loads(line).get("ledger_seq") for line in one.splitlines()]
    assert [seq for seq in seqs if seq] == sorted(seq for seq in seqs if seq)


def test_settle_prints_a_summary_line_on_stderr(tmp_path):
    path = tmp_path / "events.jsonl"
    b.fresh()
    enrolled = b.enrolled("M1", b.NANJING)
    visit = b.visit("M1", b.NANJING, on="2023-03-01", items=b.drug("100.00"))
    path.write_text(stream_text([enrolled, visit, visit]) + "{broken\n\n", encoding="utf-8")
    for workers in ("1", "2"):
        result = CliRunner().invoke(app, ["settle", str(path), "--workers", workers])
        assert result.exit_code == 0, result.output
        assert result.stderr.strip() == (
            "medledger: read 4, duplicates 1, settlements 1, movements 0, incentives 0, rejected 1"
        )


def test_a_line_that_is_not_json_is_named_by_its_line_and_column_in_the_file(tmp_path):
    path = tmp_path / "events.jsonl"
    b.fresh()
    lines = [b.as_line(b.enrolled(f"M{n}", b.NANJING)) for n in range(5)]
    lines.insert(2, "")
    lines += ['{"event_id": "x", "event_type": ', '{"event_id": "y" "event_type": 1}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["settle", str(path)])
    rejected = {r["rejected"]: r["detail"] for r in map(json.loads, result.stdout.splitlines()) if "rejected" in r}
    assert rejected == {
        7: "invalid JSON: EOF while parsing a value at line 7 column 32",
        8: 'invalid JSON: expected `,` or `}` at line 8 column 18 (near \'y" "event_type": 1}\')',
    }


def test_a_worker_that_fails_stops_the_run_with_its_error_and_leaves_no_process(monkeypatch):
    import multiprocessing

    from ledger.offline import Settling
    from ledger.spread import WorkerFailed

    settle_round = Settling.answers

    def failing(self, items, elsewhere=()):
        if any(item.position == 5 for item in items):
            raise RuntimeError("a defect met on line 5")
        return settle_round(self, items, elsewhere)

    monkeypatch.setattr(Settling, "answers", failing)  # the workers are forked with it
    started = time.monotonic()
    with pytest.raises(WorkerFailed, match="a defect met on line 5"):
        settled(stream_text(interleaved()), 2)
    assert multiprocessing.active_children() == []
    assert time.monotonic() - started < 4.5


def test_output_closed_early_stops_the_workers():
    import multiprocessing

    def closed(_: bytes) -> None:
        raise BrokenPipeError

    started = time.monotonic()
    with pytest.raises(BrokenPipeError):
        settle_file(read_lines(io.BytesIO(stream_text(interleaved()).encode())), None, 2, closed, 0)
    assert multiprocessing.active_children() == []
    assert time.monotonic() - started < 4.5  # stopped, not waited for: each would be waited for 5 s


class _Stdout:
    """Standard output as an unbuffered one is (PYTHONUNBUFFERED): every write reaches the file; `most`, each
    takes at most that many bytes, as a raw file may."""

    def __init__(self, most: int | None = None) -> None:
        self.buffer = self
        self.writes: list[bytes] = []
        self.most = most

    def write(self, data: bytes) -> int:
        taken = bytes(data[: self.most] if self.most is not None else data)
        self.writes.append(taken)
        return len(taken)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_is_printed_in_large_writes_whatever_the_buffering_of_standard_output(tmp_path, monkeypatch, workers):
    from bench.generate import generate
    from ledger.cli.offline import settle

    text = "".join(json.dumps(event, default=str) + "\n" for event in generate(5_000, seed=3))
    path = tmp_path / "events.jsonl"
    path.write_text(text)
    expected, _ = settled(text, 1)
    out = _Stdout()
    monkeypatch.setattr("sys.stdout", out)
    settle(str(path), None, workers)
    assert b"".join(out.writes) == expected
    assert text.count("\n") > ROUND and len(expected) > 2 << 20  # two processes; more than two mebibytes
    # a write a mebibyte (a write a record was a system call a record)
    assert all(len(chunk) >= 1 << 20 for chunk in out.writes[:-1]) and len(out.writes) <= (len(expected) >> 20) + 1


def test_what_a_write_does_not_take_is_written_after_it(tmp_path, monkeypatch):
    from ledger.cli.common import print_records
    from ledger.cli.offline import settle

    text = stream_text(interleaved())
    path = tmp_path / "events.jsonl"
    path.write_text(text)
    expected, _ = settled(text, 1)
    out = _Stdout(most=1_000)
    monkeypatch.setattr("sys.stdout", out)
    settle(str(path), None, 1)
    assert b"".join(out.writes) == expected and len(out.writes) > 1

    out.writes.clear()
    records = [{"settlement_id": f"S-{n}"} for n in range(500)]
    print_records(records)
    assert b"".join(out.writes).decode() == "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)


def test_a_non_blocking_pipe_is_waited_on_not_written_short():
    import fcntl
    import os
    import threading

    from ledger.cli.output import write_all

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETFL, fcntl.fcntl(write_end, fcntl.F_GETFL) | os.O_NONBLOCK)
    data = bytes(range(256)) * 12_000  # 3 MB: the pipe holds 64 kB
    received: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 1 << 16):
            received.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with open(write_end, "wb", buffering=0) as raw:  # unbuffered, as PYTHONUNBUFFERED makes standard output
        write_all(raw, data)
    reader.join(10)
    os.close(read_end)
    assert b"".join(received) == data


@pytest.mark.parametrize("regular", [False, True])
def test_standard_input_from_a_pipe_is_printed_as_it_is_settled_and_from_a_file_in_large_writes(
    tmp_path, monkeypatch, regular
):
    import os
    import threading

    from ledger.cli.offline import settle

    text = stream_text(interleaved())
    expected, _ = settled(text, 1)
    if regular:  # settle - < events.jsonl
        (tmp_path / "events.jsonl").write_text(text)
        stdin = open(tmp_path / "events.jsonl", "rb")  # noqa: SIM115 - closed by settle
    else:  # producer | settle -
        read_end, write_end = os.pipe()
        stdin = os.fdopen(read_end, "rb")

        def produce() -> None:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(text.encode())

        threading.Thread(target=produce).start()
    out = _Stdout()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(stdin))
    settle("-", None, 1)
    assert b"".join(out.writes) == expected
    # a live stream's records are not held back; a file's go out a mebibyte at a time
    assert len(out.writes) == (1 if regular else expected.count(b"\n"))


def test_records_of_a_batch_and_a_worker_s_file_are_printed_in_one_write(tmp_path, monkeypatch):
    from ledger.cli.common import print_file, print_records

    records = [{"settlement_id": f"S-{n}", "fund_paid": "1.00"} for n in range(300)]
    expected = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records).encode()
    out = _Stdout()
    monkeypatch.setattr("sys.stdout", out)
    print_records(records)
    assert out.writes == [expected]
    (tmp_path / "worker.jsonl").write_bytes(expected * 10)
    out.writes.clear()
    print_file(tmp_path / "worker.jsonl")
    assert out.writes == [expected * 10]


def test_records_printed_under_a_progress_bar_go_to_standard_output_when_it_is_a_file(monkeypatch):
    """The bar is drawn on standard error when that is a terminal; records printed meanwhile to a file or a pipe
    go there, not to the terminal with the bar."""
    from rich.console import Console

    from ledger.cli import common

    terminal = io.StringIO()
    monkeypatch.setattr(common, "Console", lambda stderr: Console(file=terminal, force_terminal=True))
    out = _Stdout()
    monkeypatch.setattr(
        "sys.stdout", type("File", (), {"buffer": out, "isatty": lambda self: False, "flush": out.flush})()
    )
    with common.progress_bar("ingest", 10) as bar:
        bar.advance(5)
        common.print_records([{"settlement_id": "S-1"}])
    assert out.writes == [b'{"settlement_id":"S-1"}\n']
    assert "S-1" not in terminal.getvalue()
