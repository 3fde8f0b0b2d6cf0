"""A file medledger is given and reads again when it changes (the platform's reference data, the callers' keys).

Its size and modification time are looked at, at most once a second, when it is used; a changed file is read again
whole. A new version that cannot be read is refused with the reason logged, and the last good one stays in use:
a half-written file never empties the catalogue under a counter's feet."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger("medledger.gateway")

T = TypeVar("T")
LOOK_EVERY = 1.0  # seconds


class Reloading(Generic[T]):
    def __init__(self, path: str | Path, parse: Callable[[str], T], look_every: float = LOOK_EVERY):
        self.path, self.parse, self.look_every = Path(path), parse, look_every
        self._seen: tuple[int, int] | None = None
        self._looked = 0.0
        self._value: T = self._read(self._stamp())  # the first version must be readable: a start fails loudly

    def _stamp(self) -> tuple[int, int]:
        stat = os.stat(self.path)
        return stat.st_mtime_ns, stat.st_size

    def _read(self, stamp: tuple[int, int]) -> T:
        value = self.parse(self.path.read_text(encoding="utf-8"))
        self._seen = stamp
        return value

    @property
    def current(self) -> T:
        now = time.monotonic()
        if now - self._looked >= self.look_every:
            self._looked = now
            try:
                stamp = self._stamp()
                if stamp != self._seen:
                    self._value = self._read(stamp)
                    log.info("reference file reloaded", extra={"path": str(self.path)})
            except Exception as error:  # keep what was good; say why the new version is not used
                log.error("reference file not reloaded", extra={"path": str(self.path), "error": str(error)})
        return self._value
