"""Temporaries of a dead writer are removed at receiver start, even while it is a zombie.

A receiver killed together with its workers leaves the workers as zombies until init reaps
them; `kill(pid, 0)` still finds a zombie, but it will never write again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from camxfer.recv.landing import TEMP_PREFIX, remove_stale_temps


def test_temporaries_of_a_zombie_writer_are_removed(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        (tmp_path / "ball").mkdir()
        temp = tmp_path / "ball" / f"{TEMP_PREFIX}{pid}-3"
        temp.write_bytes(b"half a frame")
        alive = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-1"
        alive.write_bytes(b"in progress")
        assert remove_stale_temps(tmp_path) == 1
        assert not temp.exists() and alive.exists()
    finally:
        os.waitpid(pid, 0)
