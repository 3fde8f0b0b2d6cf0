"""The offline commands: settle a file in memory, publish the contract's schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..codec import dumps
from ..contract import contract_json_schema
from ..intake import read_lines
from ..offline import settle_stream
from .app import app
from .common import ParametersOption, open_events, parameters_file


@app.command()
def settle(
    events: Annotated[str, typer.Argument(help="JSON Lines file of contract events, or - for standard input.")],
    parameters: ParametersOption = None,
) -> None:
    """Settle EVENTS in order with an in-memory state; print one JSON line per settlement, movement,
    incentive evaluation and rejection. Rejections never stop the run."""
    params = parameters_file(parameters)
    source = open_events(events)
    out = sys.stdout
    with source:
        for record in settle_stream(read_lines(source), params):
            out.write(dumps(record))
            out.write("\n")


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
