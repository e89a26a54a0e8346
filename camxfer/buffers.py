"""Reusable I/O buffers: a connection takes one, gives it back when it ends, the next reuses it.

Why not just allocate one per connection: a sender run (each trigger starts one per camera,
each with --conns connection threads) and a receiver connection each need a 1 MiB buffer.
When glibc frees such a block it raises its dynamic mmap threshold, so later 1 MiB blocks
come from per-thread malloc arenas, which are seldom given back to the system: a trigger
server taking events back to back grew from 21 to 92 MiB over 160 events in the soak test
(flat at 25 MiB with the threshold pinned). Pooled buffers are never freed, so memory stays
at the most ever in use at once, up to `keep` buffers.

The buffers are anonymous maps, not bytearrays: a bytearray is zero-filled when made, which
touches all of its 1 MiB (~0.7 ms each, eight of them before a --once run's first file),
while a map's pages are only faulted in when first written, so a 200 KiB frame costs only
the pages it fills.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Buffer = TypeVar("Buffer")


def anonymous_map(size: int) -> mmap.mmap:
    """Zeroed, page-aligned memory whose pages are made on first touch."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # a fork must not share it


class BufferPool(Generic[Buffer]):
    def __init__(self, make: Callable[[int], Buffer], size: int, keep: int) -> None:
        self.size = size
        self.keep = keep  # buffers kept for reuse; more given back are left to the collector
        self._make = make
        self._free: list[Buffer] = []
        self._lock = threading.Lock()

    def take(self) -> Buffer:
        with self._lock:
            if self._free:
                return self._free.pop()
        return self._make(self.size)

    def give(self, buffer: Buffer) -> None:
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(buffer)
