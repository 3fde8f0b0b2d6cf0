"""`medledger settle --workers N`: the regions of a file settled in parallel processes, printed in input order.

The engine keeps everything by region (members, visits, payments, closed years: `policies.book.Book`), so each
region's events can be settled by a process of its own. What `settle` keeps across regions is small: the event ids
given so far (a repeat, or another event under an id already given) and the unreadable input refused so far (a
repeat of it is acknowledged, not refused again). The parent reads each line's region and event id (a cheap
parse, the decoder's parser when the fast one refuses the line) and sends the line to the worker of its region;
what names no region the contract knows goes to the first worker. The same bytes always go to the same worker, so
each worker's record of unreadable input is as good as one for the whole file. An event id sent to a worker other
than the one that had it first is the one exchange between workers: everything before the line is settled first,
the other worker says what event (if any) it holds under the id, and the line is settled knowing it. Such reuse
of an id across regions is rare; when it is not, settling is as exact and slower.

Workers take the lines a round at a time and answer each line with the bytes it prints; the parent writes them in
input order. Neither input nor output is ever held whole: a few rounds are in flight at a time.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain, islice
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from typing import Any

import jiter
import orjson

from policies.parameters import ParameterSet

from .codec import encoded
from .contract import Region
from .contract.fields import EVENT_ID_MAX
from .intake import Oversized, decode, from_numbered
from .offline import ROUND as SETTLED_TOGETHER
from .offline import Settling, Tally

ROUND = 2_048  # lines read before they are handed to the workers
AHEAD = 3  # rounds handed over and not yet written, at most
KNOWN_REGIONS = frozenset(region.value for region in Region)
LINES, HELD, END = "lines", "held", "end"


def settle_file(
    lines: Iterable[bytes | Oversized],
    parameters: ParameterSet | None,
    workers: int,
    write: Callable[[bytes], object],
    spread_from: int = ROUND,
) -> Tally:
    """Settle the lines of a file, writing the bytes printed through `write`: in this process when `workers` is 1
    or the file has fewer than `spread_from` lines (starting workers would cost more than they save)."""
    lines = iter(lines)
    head = list(islice(lines, spread_from)) if workers > 1 else []
    if workers <= 1 or len(head) < spread_from:
        settling = Settling(parameters)
        for record in settling.settle(from_numbered(enumerate(chain(head, lines), start=1), "input", structs=True)):
            write(encoded(record))
        return settling.tally
    return Spread(parameters, workers).run(chain(head, lines), write)


def route_of(line: bytes | Oversized) -> tuple[str | None, str | None]:
    """The region and event id a line names, if it is a JSON object that names them as strings."""
    if isinstance(line, Oversized):
        return None, None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:  # what the decoder reads, the fast parser may not (a number beyond 64 bits, say)
            obj = jiter.from_json(line, allow_inf_nan=False, catch_duplicate_keys=True, float_mode="decimal")
        except ValueError:
            return None, None
    if not isinstance(obj, dict):
        return None, None
    region, event_id = obj.get("region"), obj.get("event_id")
    return (
        region if isinstance(region, str) else None,
        event_id if isinstance(event_id, str) and len(event_id) <= EVENT_ID_MAX else None,
    )


class WorkerFailed(RuntimeError):
    pass


def _work(inbox: Queue, outbox: Connection, parameters: ParameterSet | None) -> None:
    settling = Settling(parameters)
    try:
        while True:
            kind, body = inbox.get()
            if kind == LINES:
                printed: list[bytes] = []
                for start in range(0, len(body), SETTLED_TOGETHER):  # each line settled soon after it was decoded
                    lines = body[start : start + SETTLED_TOGETHER]
                    items = [decode(line, f"input:{number}", number, number, True) for number, line, _ in lines]
                    answers = settling.answers(items, [elsewhere for _, _, elsewhere in lines])
                    printed.extend(b"".join(encoded(record) for record in answer) for answer in answers)
                outbox.send((True, printed))
            elif kind == HELD:
                outbox.send((True, settling.held_text(body)))
            else:
                outbox.send((True, settling.tally))
                return
    except BaseException:
        outbox.send((False, traceback.format_exc()))
        raise


@dataclass
class Round:
    lines: list[list[tuple]]  # per worker: (number, line, held elsewhere)
    order: list[int] = field(default_factory=list)  # the worker of each line, in input order


class Spread:
    def __init__(self, parameters: ParameterSet | None, workers: int):
        context = multiprocessing.get_context("fork")
        self.inboxes, self.outboxes, self.processes = [], [], []
        for _ in range(workers):
            inbox = context.Queue()  # put never blocks the parent: a thread of its own feeds the pipe
            receiving, sending = context.Pipe(duplex=False)
            process = context.Process(target=_work, args=(inbox, sending, parameters), daemon=True)
            process.start()
            sending.close()
            self.inboxes.append(inbox)
            self.outboxes.append(receiving)
            self.processes.append(process)
        self.workers = workers
        self.of_region: dict[str, int] = {}
        self.load = [0] * workers
        self.given: dict[str, int | frozenset[int]] = {}  # event id -> the worker(s) its lines went to
        self.in_flight: deque[Round] = deque()

    def run(self, lines: Iterable[bytes | Oversized], write: Callable[[bytes], object]) -> Tally:
        finished = False
        try:
            current = self._round()
            for number, line in enumerate(lines, start=1):
                if not isinstance(line, Oversized) and not line.strip():
                    continue
                region, event_id = route_of(line)
                worker = self._worker_of(region)
                elsewhere = None
                if event_id is not None:
                    given = self.given.get(event_id)
                    if given is None:
                        self.given[event_id] = worker
                    elif given != worker:  # went to another worker before: which may hold the event
                        self._hand(current, write)
                        current = self._round()
                        self._drain(write)
                        given = frozenset({given}) if isinstance(given, int) else given
                        elsewhere = self._held_elsewhere(event_id, given - {worker})
                        self.given[event_id] = given | {worker}
                current.lines[worker].append((number, line, elsewhere))
                current.order.append(worker)
                self.load[worker] += 1
                if len(current.order) >= ROUND:
                    self._hand(current, write)
                    current = self._round()
            self._hand(current, write)
            self._drain(write)
            tally = Tally()
            for inbox in self.inboxes:
                inbox.put((END, None))
            for worker in range(self.workers):
                tally.merge(self._answer(worker))
            finished = True
            return tally
        finally:
            # Stopped early (output closed, a worker failed): the workers wait for lines that never come.
            for inbox in self.inboxes:
                inbox.cancel_join_thread()
            for process in self.processes:
                if not finished:
                    process.terminate()
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()

    def _round(self) -> Round:
        return Round([[] for _ in range(self.workers)])

    def _worker_of(self, region: str | None) -> int:
        if region not in KNOWN_REGIONS:
            return 0  # refused whatever it holds: no region's state is needed
        worker = self.of_region.get(region)
        if worker is None:
            worker = self.of_region[region] = min(range(self.workers), key=lambda w: (self.load[w], w))
        return worker

    def _held_elsewhere(self, event_id: str, others: frozenset[int]) -> str | None:
        """The text of the event held under `event_id` by the other workers its lines went to (one at most holds
        it: a line that finds it held elsewhere is a repeat, never held itself)."""
        held = None
        for worker in sorted(others):
            self.inboxes[worker].put((HELD, event_id))
            held = self._answer(worker) or held
        return held

    def _hand(self, current: Round, write: Callable[[bytes], object]) -> None:
        if not current.order:
            return
        for worker, lines in enumerate(current.lines):
            if lines:
                self.inboxes[worker].put((LINES, lines))
        self.in_flight.append(current)
        while len(self.in_flight) > AHEAD:
            self._write(self.in_flight.popleft(), write)

    def _drain(self, write: Callable[[bytes], object]) -> None:
        while self.in_flight:
            self._write(self.in_flight.popleft(), write)

    def _write(self, done: Round, write: Callable[[bytes], object]) -> None:
        answers = [self._answer(worker) if lines else [] for worker, lines in enumerate(done.lines)]
        taken = [0] * self.workers
        for worker in done.order:
            printed = answers[worker][taken[worker]]
            taken[worker] += 1
            if printed:
                write(printed)

    def _answer(self, worker: int) -> Any:
        try:
            ok, body = self.outboxes[worker].recv()
        except EOFError:
            raise WorkerFailed(f"settle worker {worker} ended without answering") from None
        if not ok:
            raise WorkerFailed(f"settle worker {worker} failed:\n{body}")
        return body
