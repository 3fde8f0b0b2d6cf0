"""Waiting, bounded, for the ledger to decide on events the gateway published. Every writer's commit is heard on
the ledger's notification channel; each commit (or, should the channel be lost, a poll every `POLL` seconds) looks
up every event still awaited in one statement."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ledger.enquiry import Enquiry

log = logging.getLogger("medledger.gateway")

POLL = 0.25  # seconds, while something is awaited and no commit is heard
RELISTEN = 1.0


class Outcomes:
    def __init__(self, enquiry: Enquiry):
        self.enquiry = enquiry
        self._awaited: dict[str, list[asyncio.Future]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.listening = False  # whether commits are heard now (else found by polling)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._look())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def now(self, event_id: str) -> tuple[str, dict | None] | None:
        """What the ledger has decided on `event_id` so far, if anything."""
        return (await self.enquiry.outcomes([event_id])).get(event_id)

    async def wait(self, event_id: str, timeout: float) -> tuple[str, dict | None] | None:
        """The event's outcome, ("settled", record) | ("refused", {reason, detail}) | ("parked", None), or None
        when the ledger has not decided within `timeout` seconds."""
        future = asyncio.get_running_loop().create_future()
        self._awaited.setdefault(event_id, []).append(future)
        self.wake()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            waiting = self._awaited.get(event_id)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(future)
                if not waiting:
                    del self._awaited[event_id]

    async def _look(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)
            self._wake.clear()
            if not self._awaited:
                continue
            try:
                found = await self.enquiry.outcomes(list(self._awaited))
            except Exception:
                log.warning("outcomes not read; trying again", exc_info=True)
                await asyncio.sleep(POLL)
                continue
            for event_id, outcome in found.items():
                for future in self._awaited.get(event_id, ()):
                    if not future.done():
                        future.set_result(outcome)

    async def _listen(self) -> None:
        """Hear commits; should the database go away, listen again once it is back (polls meanwhile)."""
        while True:
            try:
                stopped = asyncio.Event()
                async with self.enquiry.commits(self.wake, stopped.set):
                    self.listening = True
                    await stopped.wait()
                raise ConnectionError("the listening connection closed")
            except asyncio.CancelledError:
                raise
            except Exception:
                self.listening = False
                log.warning("not listening for ledger commits; polling until it is back", exc_info=True)
                await asyncio.sleep(RELISTEN)
