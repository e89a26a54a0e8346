"""The buffer pool hands back the buffers it was given and keeps no more than asked; its
buffers cost memory only where they are written."""

from __future__ import annotations

import ctypes
import mmap
import struct

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


def _resident_pages(address: int, size: int) -> int:
    """Pages of [address, address + size) in memory now, from /proc/self/pagemap (bit 63 of
    each page's entry). Exact for this range, where smaps would count a whole merged area."""
    first = address // mmap.PAGESIZE
    with open("/proc/self/pagemap", "rb") as pagemap:
        pagemap.seek(first * 8)
        entries = pagemap.read(size // mmap.PAGESIZE * 8)
    return sum(entry >> 63 for (entry,) in struct.iter_unpack("<Q", entries))


def test_an_anonymous_map_is_zeroed_and_only_the_pages_written_are_made() -> None:
    size = 1 << 20
    buffer = anonymous_map(size)
    buffer.madvise(mmap.MADV_NOHUGEPAGE)  # where THP is "always", one fault could fill it all
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    assert address % mmap.PAGESIZE == 0  # aligned, as O_DIRECT needs
    assert _resident_pages(address, size) == 0  # untouched: no 1 MiB zero-fill up front
    view = memoryview(buffer)
    view[: 200 << 10] = b"\xff" * (200 << 10)  # a 200 KiB frame read into it
    assert _resident_pages(address, size) == (200 << 10) // mmap.PAGESIZE
    assert view[(200 << 10) :] == bytes(size - (200 << 10))  # the rest reads as zeros
    view.release()
