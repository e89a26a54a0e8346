"""The buffer pool hands back the buffers it was given and keeps no more than asked."""

from __future__ import annotations

from camxfer.buffers import BufferPool


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
