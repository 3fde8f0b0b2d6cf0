"""`medledger ingest --workers N`: the regions of a file ingested by parallel processes.

Each region's events are one stream under its own lock (`ledger.streams`), and no member, visit, payment or year
close crosses a region, so a file's regions can be ingested at the same time, each in input order, and the ledger
holds what one process would have written: the same rows at the same positions (a stream's numbers are its
region's), the same heads and root hash. Regions are shared among the workers by their number of lines; lines that
name no region (unreadable input) are refused by the first worker.

The file is parsed once to share it out (`shares`): that pass notes, for every line, the worker it goes to, one
byte a line. Each worker then reads the file and keeps the lines marked for it, by their line numbers in the file
(so each refusal names the line as one process would), without parsing the others.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import orjson

from . import runtime
from .runtime import job_pool
from .streams import NO_REGION, balanced

if TYPE_CHECKING:
    from .authority import Authority, Signer
    from .db.server import Database
    from .intake import Incoming, Oversized
    from .service import IngestStats


def region_of(line: object) -> str:
    """The region a line names, without validating it (NO_REGION when it names none)."""
    if not isinstance(line, bytes | str):
        return NO_REGION  # an oversized line
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return NO_REGION
    region = event.get("region") if isinstance(event, dict) else None
    return region if isinstance(region, str) else NO_REGION


@dataclass(frozen=True)
class Shares:
    """The regions of each worker, and for every line of the file (in `read_lines`' order) the worker it is for."""

    groups: list[frozenset[str]]
    marks: bytes


def region_lines(path: str) -> tuple[list[str], array]:
    """The regions a file names, and for each of its lines the index of its region among them."""
    from .intake import read_lines

    regions: dict[str, int] = {}
    indexes = array("I")
    with open(path, "rb") as stream:
        for line in read_lines(stream):
            region = region_of(line)
            index = regions.get(region)
            if index is None:
                index = regions[region] = len(regions)
            indexes.append(index)
    return list(regions), indexes


@dataclass(frozen=True)
class Part:
    """What one worker ingests: the file, its regions, and how the command was given."""

    path: str
    regions: frozenset[str]
    worker: int  # its number among the parts: the mark of its lines in `marks`
    marks: bytes  # `Shares.marks`
    parameters: str
    source: str | None
    batch_size: int
    park_ttl_days: float
    max_clock_skew_seconds: float
    output: str | None  # where its published records go, one JSON line each; None: nowhere


def shares(path: str, workers: int) -> Shares:
    """The regions of each worker, the first also refusing the lines that name none, and which worker each line
    is for: the file parsed once."""
    if workers > 255:
        raise ValueError("at most 255 workers")  # a line's mark is one byte
    regions, indexes = region_lines(path)
    counts = Counter(indexes)
    named = {region: counts[index] for index, region in enumerate(regions) if region != NO_REGION}
    groups = balanced(named, workers)
    if NO_REGION in regions:
        groups[0].append(NO_REGION)
    worker_of = {region: worker for worker, group in enumerate(groups) for region in group}
    by_index = bytes(worker_of[region] for region in regions)
    return Shares([frozenset(group) for group in groups], bytes(map(by_index.__getitem__, indexes)))


def marked(lines: Iterable[bytes | Oversized], marks: bytes, worker: int) -> Iterator[bytes | Oversized]:
    """The lines marked for `worker`; every other line as an empty one, so each keeps its number."""
    for line, mark in zip(lines, marks, strict=True):
        yield line if mark == worker else b""


def ingest_part(db: Database, part: Part, *, producers: Authority | None, signing: Signer | None) -> IngestStats:
    """In a worker: the part's lines through the ledger service. Its stats. The producers and the signing key are
    those the command read (and refused with a message of its own), sent to the worker as they were read: not the
    files read again, which may have changed or gone since."""
    from .codec import dumps
    from .intake import from_lines, read_lines
    from .service import LedgerService

    async def run(out: TextIO | None) -> IngestStats:
        def publish(records: list[dict]) -> None:
            assert out is not None
            out.write("".join(dumps(record) + "\n" for record in records))

        async with LedgerService(
            db,
            part.parameters,
            part.source,
            batch_size=part.batch_size,
            park_ttl=timedelta(days=part.park_ttl_days),
            prepare_schema=False,
            authority=producers,
            max_clock_skew=timedelta(seconds=part.max_clock_skew_seconds),
        ) as service:
            with open(part.path, "rb") as stream:
                items = from_lines(marked(read_lines(stream), part.marks, part.worker), part.path, structs=True)
                if signing is not None:
                    items = _signed(items, signing)
                return await service.ingest(items, publish if out is not None else None)

    if part.output is None:
        return runtime.run(run(None))
    with open(part.output, "w", encoding="utf-8") as out:
        return runtime.run(run(out))


def _signed(items: Iterable[Incoming], signing: Signer) -> Iterator[Incoming]:
    for item in items:
        item.claimed = signing.sign(item.raw.encode())
        yield item


def ingest_pool(workers: int) -> ProcessPoolExecutor:
    """The worker processes, collecting garbage as the `medledger` command does (`runtime.job_pool`)."""
    return job_pool(workers)


def ingest_in_parallel(
    db: Database, parts: list[Part], *, producers: Authority | None, signing: Signer | None
) -> list[IngestStats]:
    """The first part in this process, every other in a process of its own (fresh interpreters); their stats, in
    order. This process would otherwise only wait, holding its interpreter's memory (about 75 MB) the while. A part
    that fails raises here once every part has ended, the first of them in order."""
    if len(parts) == 1:
        return [ingest_part(db, parts[0], producers=producers, signing=signing)]
    with ingest_pool(len(parts) - 1) as pool:
        futures = [pool.submit(ingest_part, db, part, producers=producers, signing=signing) for part in parts[1:]]
        # on failure, leaving the pool waits for the others
        first = ingest_part(db, parts[0], producers=producers, signing=signing)
        return [first, *(future.result() for future in futures)]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def outputs(count: int, quiet: bool) -> tuple[tempfile.TemporaryDirectory | None, list[str | None]]:
    if quiet:
        return None, [None] * count
    directory = tempfile.TemporaryDirectory(prefix="medledger-ingest-")
    return directory, [str(Path(directory.name) / f"part{n}.jsonl") for n in range(count)]
