"""Is this frame finished being written? Completion detection, isolated from the scanning loop.

Signals, strongest first (docs/completion.md):
1. lookahead: a frame `lookahead` numbers later exists (cameras write frames in order), or,
   for names without numbers, `lookahead` names follow it in the listing. Only the planner
   (scan.py) sees the listing, so it applies this one; `is_complete` judges the rest;
2. the file watcher saw the writer close it (inotify IN_CLOSE_WRITE / IN_MOVED_TO) and no
   write since; a file it saw being written and not yet closed is never complete;
3. with `jpeg_eoi`, a JPEG that ends with the end-of-image marker FF D9 (and kept its size
   across a re-check) is complete, one that does not is not;
4. stability: size and mtime unchanged across `stable_ms` (the mtime is at least that old, or
   two observations that far apart agree) - but never while the file is younger than
   `settle_ms`. A writer that writes a frame in pieces pauses between them; the seed's 5 ms
   stability window alone takes such a pause for the end of the file and sends a torn frame
   (seen in the live demo). The writes of files created after the watcher started are seen
   (signal 2), so the settle time only delays files whose writing the watcher did not see.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import NamedTuple

JPEG_EOI = b"\xff\xd9"


class WriteState(Enum):
    UNKNOWN = "unknown"  # the watcher has not seen this file written (or there is no watcher)
    WRITING = "writing"  # modified and not yet closed
    CLOSED = "closed"  # closed after writing, or renamed into place


class Observation(NamedTuple):
    size: int
    mtime_ns: int
    inode: int
    seen_at: float  # wall-clock time.time() of the observation


def observe(path: str, now: float) -> Observation | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return Observation(st.st_size, st.st_mtime_ns, st.st_ino, now)


def has_jpeg_eoi(path: str, size: int) -> bool:
    if size < 4:
        return False
    try:
        with open(path, "rb") as f:
            f.seek(size - 2)
            return f.read(2) == JPEG_EOI
    except OSError:
        return False


def is_stable(first: Observation | None, latest: Observation, stable_s: float) -> bool:
    """Size and mtime unchanged across `stable_s`, judged by mtime age or by two observations."""
    if latest.seen_at - latest.mtime_ns / 1e9 >= stable_s:
        return True
    return (
        first is not None
        and latest.seen_at - first.seen_at >= stable_s
        and (first.size, first.mtime_ns, first.inode)
        == (latest.size, latest.mtime_ns, latest.inode)
    )


def is_complete(
    *,
    path: str,
    write_state: WriteState,
    first: Observation | None,
    latest: Observation,
    stable_s: float,
    jpeg_eoi: bool,
    settle_s: float = 0.0,
) -> bool:
    if write_state is WriteState.WRITING:
        return False
    if write_state is WriteState.CLOSED:
        return True
    is_jpeg = path.lower().endswith((".jpg", ".jpeg"))
    if jpeg_eoi and is_jpeg:
        # The marker is written last; a same-size re-check guards against a file that was
        # preallocated or is being overwritten in place.
        return has_jpeg_eoi(path, latest.size) and (
            (again := observe(path, latest.seen_at)) is not None and again.size == latest.size
        )
    if _age(first, latest) < settle_s:
        return False
    return is_stable(first, latest, stable_s)


def _age(first: Observation | None, latest: Observation) -> float:
    """How long the file has been as it is now: by its mtime, or, when the mtime lies in the
    future (a camera host's clock ahead of ours, a copier keeping timestamps), by how long our
    looks have seen it unchanged. Judged by the mtime alone, such a file never settled: the
    last frames of a --once run were reported 'still being written', whatever --settle-ms."""
    age = latest.seen_at - latest.mtime_ns / 1e9
    if age >= 0:
        return age
    if first is None or (first.size, first.mtime_ns, first.inode) != (
        latest.size,
        latest.mtime_ns,
        latest.inode,
    ):
        return 0.0
    return latest.seen_at - first.seen_at
