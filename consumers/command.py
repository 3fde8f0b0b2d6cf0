"""The `medledger` command's entry point. It loads the command line only when called: a worker process that
`ingest --workers` or `replay --verify` starts (spawned, not forked) first runs the script its parent was started
from, as `__mp_main__`, and with it whatever that script imports at its top."""

from __future__ import annotations


def main() -> None:
    from .cli import main as command

    command()
