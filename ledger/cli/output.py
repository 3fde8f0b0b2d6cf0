"""What the commands print on standard output: written whole, in large writes, whatever its buffering.

Standard output is a raw file where PYTHONUNBUFFERED is set (as in many container images): each write is a system
call, and a write may take only part of what it is given (a pipe another process made non-blocking, a file at its
size limit). Records go out in writes of a batch or a mebibyte, each written to its end; an error comes out as it
happens.
"""

from __future__ import annotations

import select
import sys
from typing import BinaryIO

CHUNK = 1 << 20


def write_all(out: BinaryIO, data: bytes) -> None:
    """All of `data` to `out`, however much each write takes; a non-blocking stream is waited on until it takes
    more."""
    view = memoryview(data)
    while view:
        try:
            written = out.write(view)
        except BlockingIOError as error:  # a buffered writer over a non-blocking file: it took this much
            written = error.characters_written
        if not written:  # a raw non-blocking file that is full
            select.select([], [out.fileno()], [])
            continue
        view = view[written:]


def stdout_bytes() -> BinaryIO:
    """Standard output's bytes, with what its text layer held written first."""
    sys.stdout.flush()
    return sys.stdout.buffer


def print_bytes(data: bytes) -> None:
    """`data` on standard output, whole."""
    write_all(stdout_bytes(), data)


class Chunks:
    """Bytes to `out` in writes of at least `size`, the rest on `flush`."""

    def __init__(self, out: BinaryIO, size: int = CHUNK) -> None:
        self._out = out
        self._size = size
        self._held: list[bytes] = []
        self._length = 0

    def write(self, data: bytes) -> None:
        self._held.append(data)
        self._length += len(data)
        if self._length >= self._size:
            self.flush()

    def flush(self) -> None:
        if self._held:
            held, self._held, self._length = self._held, [], 0
            write_all(self._out, b"".join(held))
