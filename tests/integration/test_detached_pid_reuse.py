"""A stale pid file must not make an unrelated (younger) process look like our service."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from camxfer.fleet import detached


def test_a_process_younger_than_its_pid_file_is_not_ours(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)  # camxfer"]
    info = detached.start(tmp_path, "svc", argv)
    try:
        assert detached.status(tmp_path, "svc").running
        # As if the pid file were written long before this process existed: the pid was reused.
        old = time.time() - 600
        os.utime(tmp_path / "svc.pid", (old, old))
        assert not detached.status(tmp_path, "svc").running
        assert detached.stop(tmp_path, "svc", grace_s=1).running is False
        assert info.pid is not None and os.waitpid(info.pid, os.WNOHANG) == (0, 0)  # not killed
    finally:
        os.kill(info.pid, signal.SIGKILL)
        os.waitpid(info.pid, 0)
