"""Process settings for medledger's jobs: how often the cyclic garbage collector runs."""

import gc
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

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
