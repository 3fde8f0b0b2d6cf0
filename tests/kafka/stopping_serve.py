"""`medledger serve` that stops for good at a named point of its relay, for tests that kill it there:

    python -m tests.kafka.stopping_serve POINT serve [OPTIONS]

- `before-publish`: batches commit, with their outbox records, but the relay never gets them to the broker;
- `before-record`: the relay publishes, but never records how far it got.
"""

from __future__ import annotations

import asyncio
import sys

import consumers.relay
from consumers.producer import BatchProducer


async def _forever(*_args, **_kwargs) -> None:
    await asyncio.Event().wait()


POINTS = {
    "before-publish": (BatchProducer, "publish"),
    "before-record": (consumers.relay, "record_relayed"),
}

if __name__ == "__main__":
    owner, name = POINTS[sys.argv.pop(1)]
    setattr(owner, name, _forever)
    from consumers.cli import app

    app()
