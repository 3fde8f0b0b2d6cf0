"""Replays the console starts in the background: a what-if (`replay --policy FILE --compare`) or a verification
(`replay --verify`), one at a time, each on a thread of its own so that pages keep answering meanwhile."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger import runtime
from ledger.authority import Authority
from ledger.db.server import Database
from ledger.replay import Replayer, ReplayReport

KEPT = 20  # runs whose results stay on the pages


@dataclass
class Job:
    job_id: str
    kind: str  # "whatif" or "verify"
    user: str
    source: str  # the parameter file's name, for a what-if
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    done: int = 0
    total: int = 0
    finished: bool = False
    error: str | None = None
    report: ReplayReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


def producers() -> Authority | None:
    """The producers file named by MEDLEDGER_PRODUCERS, read when a verification starts (as `replay --verify` reads
    it): the signatures kept with the events are checked again against it. None: not checked, and the report says
    so."""
    path = os.environ.get("MEDLEDGER_PRODUCERS")
    return Authority.load(path) if path else None


class Jobs:
    def __init__(self, db: Database):
        self.db = db
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def running(self) -> Job | None:
        return next((job for job in self._jobs.values() if not job.finished), None)

    def latest(self, kind: str) -> Job | None:
        jobs = [job for job in self._jobs.values() if job.kind == kind]
        return max(jobs, key=lambda job: job.started_at) if jobs else None

    def start(
        self,
        kind: str,
        user: str,
        source: str = "",
        parameters: str = "",
        after: Callable[[Job], Coroutine[Any, Any, object]] | None = None,
    ) -> Job | None:
        """None while another replay runs (each holds a connection and a core)."""
        with self._lock:
            if self.running() is not None:
                return None
            job = Job(secrets.token_urlsafe(12), kind, user, source)
            self._jobs[job.job_id] = job
            for old in sorted(self._jobs.values(), key=lambda j: j.started_at)[: max(0, len(self._jobs) - KEPT)]:
                del self._jobs[old.job_id]  # finished ones: one runs at a time, and it is the newest

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def run() -> None:
            replayer = Replayer(self.db, progress=progress)
            try:
                if kind == "verify":
                    job.report = runtime.run(replayer.verify(producers()))
                else:
                    job.report = runtime.run(replayer.compare(parameters, source))
                if after is not None:
                    runtime.run(after(job))
            except Exception as error:  # shown on the page; the ledger is never written by a replay
                job.error = f"{type(error).__name__}: {error}"
            finally:
                job.finished = True

        threading.Thread(target=run, name=f"medledger-console-{kind}", daemon=True).start()
        return job
