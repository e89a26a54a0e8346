"""The buffer pool hands back the buffers it was given and keeps no more than asked; its
buffers cost memory only where they are written."""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

from camxfer.buffers import BufferPool, anonymous_map


def test_buffers_are_reused_and_the_pool_is_bounded() -> None:
    pool = BufferPool(bytearray, 1024, keep=2)
    taken = [pool.take() for _ in range(3)]
    assert all(len(b) == 1024 for b in taken)
    assert len({id(b) for b in taken}) == 3
    for buffer in taken:
        pool.give(buffer)
    again = [pool.take() for _ in range(3)]
    reused = {id(b) for b in again} & {id(b) for b in taken}
    assert len(reused) == 2  # the third was not kept: a fresh one was made


def _resident_kib(address: int) -> int:
    """Rss of the mapping that starts at `address`, from /proc/self/smaps."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for index, line in enumerate(lines):
        if line.split("-", 1)[0] == f"{address:x}":
            for field in lines[index + 1 :]:
                if field.startswith("Rss:"):
                    return int(field.split()[1])
    raise AssertionError(f"no mapping at {address:#x}")


def test_an_anonymous_map_is_zeroed_and_only_the_pages_written_are_made() -> None:
    size = 1 << 20
    buffer = anonymous_map(size)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    assert address % mmap.PAGESIZE == 0  # aligned, as O_DIRECT needs
    assert _resident_kib(address) == 0  # nothing touched yet: no 1 MiB zero-fill up front
    view = memoryview(buffer)
    view[: 200 << 10] = b"\xff" * (200 << 10)  # a 200 KiB frame read into it
    assert 200 <= _resident_kib(address) < 1024
    assert view[(200 << 10) :] == bytes(size - (200 << 10))  # the rest reads as zeros
    view.release()
