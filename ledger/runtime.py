"""Process settings for medledger's jobs: the event loop they run on, and how often the cyclic garbage collector
runs."""

import asyncio
import gc
import multiprocessing
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on a new event loop, as `asyncio.run` does: uvloop's where it is installed (a
    dependency of medledger but on Windows), else asyncio's own. Every command runs its coroutines here.

    Each batch of `serve` makes a handful of round trips to PostgreSQL and the broker. On asyncio's own loop, the
    loop's Python code (its selector, callbacks and socket writes) took about a third of serve's CPU at 1,000
    events a second; uvloop does the same in C, over libuv (`docs/benchmarks.md`)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


# A collection of the youngest generation once this many more objects that can hold references have been made
# than freed; then, as by default, one of the middle generation every 10 of those and the oldest every 10 of those.
THRESHOLDS = (1_000_000, 10, 10)


def tune_garbage_collector() -> None:
    """Settling makes and drops millions of small objects (events, settlements, member states, rows) and almost
    never a reference cycle: reference counting frees them. The cyclic collector does not know that, and each time
    it runs it walks every young object still alive. A batch of a few thousand events keeps a few hundred thousand
    of them alive: with a collection every 100,000 objects, ingest spent about a tenth of its CPU walking them, and
    with Python's default of 700, a third. At a million, a batch settles with no collection at all, and the cycles
    that do form (an exception's traceback, an abandoned connection) are still freed, at most a million objects
    later. What is alive when the command starts (the modules imported so far) will never be garbage: it is
    frozen, and the collections of the oldest generation pass it by."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def _start(then: Callable[..., object] | None, arguments: tuple) -> None:
    tune_garbage_collector()
    if then is not None:
        then(*arguments)


def job_pool(
    workers: int, initializer: Callable[..., object] | None = None, initargs: tuple = ()
) -> ProcessPoolExecutor:
    """Processes for a command's share of the work (ingest's regions, verify's): fresh interpreters (no state
    inherited from the parent), each collecting garbage as the command itself does (`tune_garbage_collector`), then
    started by `initializer`. A worker left at Python's default collects every 700 objects: two ingest workers so
    spent almost twice the CPU an event of one process, each walking its batch's live objects again and again."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start, initargs=(initializer, initargs)
    )
