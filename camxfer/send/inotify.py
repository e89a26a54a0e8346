"""Linux inotify, called through libc: the instance, its watches, and its events read back.

Responsible for: the system calls and the kernel's event records (inotify(7)). Not
responsible for: what the events mean to a sender (`watch`).

Why not the inotify_simple package: importing it imports ctypes.util, which brings in
shutil, bz2, lzma, subprocess, tempfile and random (9.4 ms of every `camxfer send` start-up
here), and its first instance finds libc by running `/sbin/ldconfig -p` in a subprocess (1.7
ms). `camxfer.libc` reaches the libc the process has loaded already.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct

from camxfer import libc

# Event bits (<sys/inotify.h>).
MODIFY = 0x00000002
CLOSE_WRITE = 0x00000008
MOVED_FROM = 0x00000040
MOVED_TO = 0x00000080
CREATE = 0x00000100
DELETE = 0x00000200
MOVE_SELF = 0x00000800  # the watched folder itself was moved
Q_OVERFLOW = 0x00004000  # the kernel's queue overflowed: events were lost
IGNORED = 0x00008000  # the watch was removed (its folder deleted or unmounted)
ONLYDIR = 0x01000000  # add_watch: fail unless the path is a folder
ISDIR = 0x40000000  # the event is about a folder

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
_READ_BYTES = 64 << 10

_INIT1 = libc.function("inotify_init1", ctypes.c_int)
_ADD_WATCH = libc.function("inotify_add_watch", ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)


class Event:
    __slots__ = ("cookie", "mask", "name", "wd")

    def __init__(self, wd: int, mask: int, cookie: int, name: str) -> None:
        self.wd = wd
        self.mask = mask
        self.cookie = cookie
        self.name = name  # "" for an event about the watched folder itself

    def __repr__(self) -> str:
        return f"Event(wd={self.wd}, mask={self.mask:#x}, name={self.name!r})"


class Inotify:
    """One inotify instance (non-blocking, close-on-exec). Failing calls raise OSError."""

    def __init__(self) -> None:
        if _INIT1 is None or _ADD_WATCH is None:
            raise OSError(errno.ENOSYS, "this C library has no inotify")
        self._fd = libc.check(_INIT1(os.O_NONBLOCK | os.O_CLOEXEC))
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    def fileno(self) -> int:
        return self._fd

    def add_watch(self, path: str, mask: int) -> int:
        """Watch `path` for the events in `mask`; returns the watch descriptor."""
        assert _ADD_WATCH is not None  # checked when the instance was made
        return libc.check(_ADD_WATCH(self._fd, os.fsencode(path), mask))

    def read(self, timeout_ms: int) -> list[Event]:
        """Every event queued, waiting up to `timeout_ms` for the first; [] if none came."""
        if not self._poll.poll(timeout_ms):
            return []
        chunks = []
        while True:
            try:
                chunk = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return parse_events(b"".join(chunks))

    def close(self) -> None:
        os.close(self._fd)


def parse_events(data: bytes) -> list[Event]:
    """The kernel's event records, one after another, each name NUL-padded."""
    events = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        name = data[offset : offset + length].rstrip(b"\0")
        offset += length
        events.append(Event(wd, mask, cookie, os.fsdecode(name)))
    return events
