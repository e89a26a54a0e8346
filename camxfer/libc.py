"""C library calls the os module lacks (syncfs, sync_file_range, inotify), through the libc
the process has loaded already: `CDLL(None)` needs no library search (ctypes.util would
import shutil, subprocess and tempfile, and run `ldconfig -p` in a subprocess)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable


def function(name: str, *argtypes: type) -> Callable[..., int] | None:
    """libc's `name`, returning a C int, with errno kept for `check`; None where absent."""
    try:
        found = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    found.argtypes = list(argtypes)
    found.restype = ctypes.c_int
    return found


def check(result: int) -> int:
    """`result` of a call that failed with -1 raised as the OSError its errno names."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result
