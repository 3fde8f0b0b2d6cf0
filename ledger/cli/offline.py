"""The offline commands: settle a file in memory, publish the contract's schema."""

from __future__ import annotations

import json
import os
import stat
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, BinaryIO, Optional

import typer

from ..contract import contract_json_schema
from ..intake import read_lines
from ..spread import settle_file
from .app import app
from .common import ParametersOption, open_events, parameters_file
from .output import Chunks, stdout_bytes, write_all


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
    out = stdout_bytes()
    with source:
        # Settled from a regular file, the records are written a mebibyte at a time (`output`); from a live stream
        # (a pipe, a FIFO, a terminal), each is handed to standard output as it is settled.
        printed = Chunks(out) if _regular(source) else None
        try:
            tally = settle_file(
                read_lines(source),
                params,
                workers or len(os.sched_getaffinity(0)),
                printed.write if printed is not None else partial(write_all, out),
            )
        finally:
            if printed is not None:
                printed.flush()
    out.flush()
    typer.echo(tally.line(), err=True)


def _regular(source: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(source.fileno()).st_mode)
    except (OSError, ValueError):  # no file of its own
        return False


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
