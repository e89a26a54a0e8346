"""The folder lock `land_manifest` takes ends with the landing: another process (here, another
open file description, which flock treats alike) can take it at once afterwards, also for the
landing root itself (a run without a destination path)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from camxfer.manifest import MANIFEST_NAME, Manifest, RunRecord
from camxfer.recv.landing import LandingRoot
from camxfer.recv.manifest import land_manifest, lock_folder


def lock_is_free(folder: Path) -> bool:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("dest", ["", "ball_1/cam01"], ids=["root", "subfolder"])
def test_folder_lock_is_released_after_landing(tmp_path: Path, dest: str) -> None:
    out = tmp_path / "out"
    root = LandingRoot(out)
    try:
        body = Manifest(runs=[RunRecord(started="s", ended="e")]).encode()
        land_manifest(root, dest, body, time.time())
        folder = out / dest if dest else out
        assert (folder / MANIFEST_NAME).is_file()
        assert lock_is_free(folder)
    finally:
        root.close()


def test_a_folder_held_by_another_lander_is_refused_after_the_wait(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = LandingRoot(out)
    holder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        folder_fd = root.open_folder([])
        try:
            with pytest.raises(OSError, match="another manifest"):
                lock_folder(folder_fd, timeout=0.2)
        finally:
            os.close(folder_fd)
    finally:
        os.close(holder)
        root.close()
