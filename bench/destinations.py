"""A fresh destination folder for each repetition, away from the files the last one deleted.

Responsible for: `fresh_dest`, the empty folder a repetition lands into.

Why not simply `rm -rf dest && mkdir dest`: on ext4 without a journal (this machine's root
filesystem), creating a file skips every inode freed in the last 60-360 s
(`recently_deleted()` in fs/ext4/ialloc.c), looking each one up in the buffer cache. A
folder created again under the same name goes back to the same block group, so after the
previous repetition's 1,000 files were deleted, every new file scanned past them: perf put
~15 % of all CPU of a 1,000-file run in `find_inode_bit`, and cp and camxfer alike landed
half the files per second they do in a fresh group. A storage host writing events into new
folders does not pay this; the benchmark paid it only because it deleted each run's files
right before the next one. So each repetition gets a folder with a name of its own under a
parent marked as a top of a directory hierarchy (`chattr +T`), which makes ext4 spread each
new child to a group of its own choosing (the Orlov allocator) instead of its parent's.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import struct
from pathlib import Path

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000

_serial = itertools.count(1)


def mark_top_dir(folder: Path) -> bool:
    """Set the top-directory flag on `folder`; False where the filesystem has no such flag."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_TOPDIR_FL) + bytes(4))
        return True
    except OSError:  # tmpfs, overlayfs, ...: nothing to spread
        return False
    finally:
        os.close(fd)


def fresh_dest(workdir: Path, label: str) -> Path:
    """An empty folder, named for this repetition alone, under `workdir/dest`.

    Earlier repetitions' folders are deleted first (the disk must not fill up); the new one
    has a name never used before in this process, so ext4 is free to place it elsewhere.
    """
    parent = workdir / "dest"
    parent.mkdir(parents=True, exist_ok=True)
    mark_top_dir(parent)
    for old in parent.iterdir():
        remove(old)
    dest = parent / f"{label}-{os.getpid()}-{next(_serial)}"
    dest.mkdir()
    return dest


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
