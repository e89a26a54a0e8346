"""Writing a landing file's bytes with O_DIRECT: straight from the receiver's memory to the disk.

Responsible for: staging the body in an aligned buffer, writing it in whole aligned blocks,
the last partial block through the page cache, and falling back to ordinary writes where the
filesystem refuses direct I/O; the inputs to choosing it (`wanted`, and `PageCacheCost`, what
buffered writes cost here). Not responsible for: the choice itself (the session makes it),
checksums or durability (`landing`): a direct write still needs the fsync that makes the
file's size and the disk's cache durable.

Why: an ordinary write copies each byte into new page-cache pages, and later writeback reads
them out again. On the storage host that work competes with everything else the machine
does. With six cameras writing their rings on the same two cores, landing with O_DIRECT cut
the receivers' CPU by about a quarter, and the median of the runs' p99 complete -> landed
latency from 158 ms to 30 ms (docs/performance-history.md). With nothing else writing,
buffered writes with one syncfs per batch stay faster, unless the page cache itself is slow
(a VM handing its free memory back to the host); hence the "auto" policy.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable

from camxfer.buffers import BufferPool, anonymous_map

# Direct I/O wants the buffer address, file offset and length aligned to the device's logical
# block size: 512 or 4096 bytes; 4096 suits both.
ALIGN = 4096
STAGE_BYTES = 1 << 20


# One aligned stage per connection landing directly, reused by the next (camxfer.buffers).
# A map is page-aligned, which a bytearray does not promise.
STAGES: BufferPool[mmap.mmap] = BufferPool(anonymous_map, STAGE_BYTES, keep=32)


log = logging.getLogger("camxfer.recv")

# When the receiver lands files with O_DIRECT (`camxfer recv --direct-io`). "auto": while
# other writers keep the machine's dirty data high (`others_writing`), or while writes into
# the page cache run slow (`PageCacheCost`).
POLICIES = ("auto", "always", "never")
# Dirty data beyond a batch's own that means other writers are busy. Measured here: a bulk
# transfer's other connections keep at most ~25 MiB dirty (each file's writeback starts
# when it is sealed); six cameras writing their rings at 30 fps, ~1.3 GiB.
OTHERS_DIRTY_BYTES = 64 << 20


def others_writing(own_dirty: int, dirty: int | None) -> bool:
    """Whether the machine's dirty data (None: unknown) shows other busy writers."""
    return dirty is not None and dirty > own_dirty + OTHERS_DIRTY_BYTES


def wanted(policy: str, others_writing: bool) -> bool:
    """Whether the next files land with O_DIRECT under `policy`."""
    return policy == "always" or (policy == "auto" and others_writing)


# CPU cost of copying into the page cache. It runs at 1-4 GB/s here (the low end with four
# workers on two cores), but on a VM whose balloon reports freed memory to its host (virtio
# free page reporting) every new page must first be backed again, and the same writes ran at
# 0.25-0.47 GB/s: bulk landed in 1.02 s buffered against 0.55 s with O_DIRECT
# (docs/performance-history.md). Below this rate O_DIRECT is the cheaper way.
SLOW_PAGE_CACHE_BYTES_PER_S = 0.8e9
# Bytes of a file's first buffered writes timed (each timing costs two ~0.6 µs clock reads),
# and the fewest that make a reading.
TIMED_BYTES = 256 << 10
MEASURED_MIN_BYTES = 64 << 10
# The rate is the median of a worker's last readings, and is judged from the third on. One odd
# file must not flip the choice: a forked worker's first write also copies the pages it
# shares with its parent, and read 0.27 GB/s while every later one read 2-4 GB/s.
READINGS = 5
MIN_READINGS = 3
# While landing direct because of it, one file this often still goes buffered, to measure again.
PROBE_SECONDS = 0.2


class PageCacheCost:
    """How fast a worker's buffered writes copy into the page cache (bytes per CPU second,
    shared by its connections), and so whether `auto` should land the next file directly."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate: float | None = None  # the median of the last READINGS readings (upper, if even)
        self._readings: collections.deque[float] = collections.deque(maxlen=READINGS)
        self._clock = clock
        self._probe_at = 0.0
        self._lock = threading.Lock()

    @property
    def slow(self) -> bool:
        return self.rate is not None and self.rate < SLOW_PAGE_CACHE_BYTES_PER_S

    def record(self, nbytes: int, cpu_seconds: float) -> None:
        """One file's timed buffered writes."""
        if nbytes < MEASURED_MIN_BYTES or cpu_seconds <= 0:
            return
        with self._lock:
            was_slow = self.slow
            self._readings.append(nbytes / cpu_seconds)
            if len(self._readings) >= MIN_READINGS:
                self.rate = sorted(self._readings)[len(self._readings) // 2]  # median
            if self.slow:
                self._probe_at = self._clock() + PROBE_SECONDS
        if self.slow != was_slow:
            assert self.rate is not None
            log.debug(
                "writes into the page cache run at %.2f GB/s: %s",
                self.rate / 1e9,
                "slow, --direct-io auto lands files with O_DIRECT"
                if self.slow
                else "normal, --direct-io auto lands files through the page cache",
                extra={"event": "page_cache_cost", "gb_per_s": self.rate / 1e9},
            )

    def skip(self) -> bool:
        """Whether the next file should skip a slow page cache. Every PROBE_SECONDS one file
        is landed buffered all the same (this returns False), so a return to normal shows."""
        if not self.slow:
            return False
        with self._lock:
            now = self._clock()
            if now < self._probe_at:
                return True
            self._probe_at = now + PROBE_SECONDS
            return False


def open_direct(name: str, flags: int, dir_fd: int) -> int | None:
    """Open `name` with `flags | O_DIRECT`; None (nothing created) where the filesystem
    refuses direct I/O (ramfs, older tmpfs, some FUSE filesystems: EINVAL)."""
    try:
        return os.open(name, flags | os.O_DIRECT, 0o644, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    # The check comes after the file was made: the caller makes it again without O_DIRECT.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
    return None


class DirectWriter:
    """The body of one file, written through `stage` to `fd` (opened with O_DIRECT).

    `write` each chunk as it arrives, or receive it into `room()` and say how much came
    (`received`), then `finish` once. Errors are raised as OSError.
    """

    def __init__(self, fd: int, stage: mmap.mmap) -> None:
        self._fd = fd
        self._stage = memoryview(stage)
        self._filled = 0  # staged bytes not yet written
        self._direct = True

    def write(self, chunk: memoryview) -> None:
        room = len(self._stage)
        while chunk and self._direct:
            take = min(len(chunk), room - self._filled)
            self._stage[self._filled : self._filled + take] = chunk[:take]
            self._filled += take
            chunk = chunk[take:]
            if self._filled == room:
                self._write_staged()
        if chunk:  # no longer direct; the stage was emptied when it stopped
            write_all(self._fd, chunk)

    def room(self, limit: int) -> memoryview:
        """Where up to `limit` more bytes can be received straight into the stage (then
        `received`), so they are not copied into it from another buffer."""
        return self._stage[self._filled : self._filled + limit]

    def received(self, n: int) -> None:
        """`n` bytes were received at the start of `room()`."""
        if not self._direct:  # fell back to ordinary writes: the stage is only where they land
            write_all(self._fd, self._stage[self._filled : self._filled + n])
            return
        self._filled += n
        if self._filled == len(self._stage):
            self._write_staged()

    def finish(self) -> None:
        """Write the last staged bytes: the whole blocks direct, the partial one buffered.

        Why not pad the last block and truncate back: the truncate must zero the block's end
        on disk, and ext4 first reads that block back, synchronously (per 200 KiB file with
        its fsync: 432 against 399 µs here).
        """
        tail = self._filled % ALIGN if self._direct else 0
        if self._filled > tail:
            self._write_staged(end=self._filled - tail)  # moves the tail to the stage's start
        if self._filled:
            if self._direct:
                self._fall_back()
            write_all(self._fd, self._stage[: self._filled])
            self._filled = 0

    def _write_staged(self, end: int | None = None) -> None:
        """Write the first `end` staged bytes (default: all; a multiple of ALIGN while
        direct) and move the rest to the stage's start."""
        end = self._filled if end is None else end
        done = 0
        while done < end:
            try:
                done += os.write(self._fd, self._stage[done:end])
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self._direct:
                    raise
                # The filesystem took the open but not this write (an alignment it needs
                # that we do not meet): go on with ordinary writes, from where this one
                # stopped.
                self._fall_back()
        self._stage[: self._filled - end] = self._stage[end : self._filled]
        self._filled -= end

    def _fall_back(self) -> None:
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        self._direct = False


def write_all(fd: int, data: memoryview) -> None:
    """write() until all of `data` is written."""
    while data:
        written = os.write(fd, data)
        data = data[written:]
