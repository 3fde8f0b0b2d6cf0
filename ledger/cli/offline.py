"""The offline commands: settle a file in memory, publish the contract's schema."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..contract import contract_json_schema
from ..intake import read_lines
from ..spread import settle_file
from .app import app
from .common import ParametersOption, open_events, parameters_file


@app.command()
def settle(
    events: Annotated[str, typer.Argument(help="JSON Lines file of contract events, or - for standard input.")],
    parameters: ParametersOption = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Processes settling regions in parallel (default: the processors this process may use); the "
            "output is the same for any number.",
        ),
    ] = None,
) -> None:
    """Settle EVENTS in order with an in-memory state; print one JSON line per settlement, movement,
    incentive evaluation and rejection, and a summary on standard error. Rejections never stop the run."""
    params = parameters_file(parameters)
    source = open_events(events)
    out = sys.stdout.buffer
    # From a file, the records go out in writes of a mebibyte: standard output is unbuffered where
    # PYTHONUNBUFFERED is set (as in many container images), and a write of each record is a system call each.
    # From standard input, which may be a live stream, each record goes out as it is settled.
    printed = Chunks(out.write) if events != "-" else None
    with source:
        try:
            tally = settle_file(
                read_lines(source),
                params,
                workers or len(os.sched_getaffinity(0)),
                printed.write if printed is not None else out.write,
            )
        finally:
            if printed is not None:
                printed.flush()
    out.flush()
    typer.echo(tally.line(), err=True)


class Chunks:
    """Writes what it is given to `write` in chunks of at least `size` bytes, and the rest on `flush`."""

    def __init__(self, write: Callable[[bytes], object], size: int = 1 << 20) -> None:
        self._write = write
        self._size = size
        self._held: list[bytes] = []
        self._length = 0

    def write(self, data: bytes) -> None:
        self._held.append(data)
        self._length += len(data)
        if self._length >= self._size:
            self.flush()

    def flush(self) -> None:
        if self._held:
            held, self._held, self._length = self._held, [], 0
            self._write(b"".join(held))


@app.command()
def schema(
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Write the JSON Schema of the event contract."""
    text = json.dumps(contract_json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
