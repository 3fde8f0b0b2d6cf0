"""Process settings for medledger's jobs: the event loop they run on, and how often the cyclic garbage collector
runs."""

import asyncio
import gc
import multiprocessing
import signal
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)  # those a loop's handlers (FastStream's, uvicorn's) take over


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on a new event loop, as `asyncio.run` does: uvloop's where it is installed (a
    dependency of medledger but on Windows), else asyncio's own. Every command runs its coroutines here; the HTTP
    servers (`gateway`, `console`) start through uvicorn, which picks uvloop itself.

    A batch's round trips to PostgreSQL and the broker go through the loop's transports, which uvloop runs in C
    over libuv: 1.13x less CPU for `ingest` of a 92,294-event stream, 1.05-1.08x for `replay --verify`; `serve`'s
    CPU at 1,000 events a second did not move (`docs/benchmarks.md`).

    The handlers of SIGINT and SIGTERM are as they were once it returns. asyncio's loop puts back what it replaced
    when it closes; uvloop's leaves its own, which ignores the signal once the loop is closed: after `serve` (whose
    FastStream application takes both) a Ctrl-C or SIGTERM would go unheard while the command stops the embedded
    server at exit."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {number: signal.getsignal(number) for number in SIGNALS} if main_thread else {}
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    finally:
        for number, handler in handlers.items():
            if handler is not None:
                signal.signal(number, handler)


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
