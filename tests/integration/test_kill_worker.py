"""kill -9 of a receiver worker in the middle of a file: the supervisor restarts it, the file
it was writing (unnamed) vanishes with it, the sender resends what was not acknowledged, and
everything lands whole.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import (
    finish_sender,
    make_frames,
    pid_alive,
    temps_under,
    tree_hashes,
    unnamed_files,
    wait_until,
)

FILES = 200
SIZE = 1024 * 1024


def worker_writing(out: Path, workers: list[int]) -> int | None:
    """A worker pid that has an unnamed file open in `out` right now (it is mid-file)."""
    writing = unnamed_files(out, workers)
    return writing[0][0] if writing else None


@pytest.mark.parametrize("reuseport", [False, True], ids=["shared-socket", "reuseport"])
def test_kill_9_worker_mid_transfer(
    receivers, senders, src: Path, out: Path, reuseport: bool
) -> None:
    make_frames(src, FILES, size=SIZE)
    receiver = receivers(out, "--workers", "2", *(["--reuseport"] if reuseport else []))
    workers = receiver.workers()
    assert len(workers) == 2, workers
    sender = senders(src, receiver.port, "--once", "--conns", "4", "--json-stats")

    victim = wait_until(
        lambda: worker_writing(out, workers), 30, "a worker to be in the middle of a file", 0.001
    )
    landed_before_kill = len([n for n in os.listdir(out) if not n.startswith(".")])
    os.kill(victim, signal.SIGKILL)

    result = finish_sender(sender, timeout=90)
    assert result.returncode == 0, result.stderr
    assert landed_before_kill < FILES, "the transfer was over before the kill"
    assert tree_hashes(out) == tree_hashes(src)
    stats = result.stats
    assert stats["files"] == FILES and stats["failed"] == 0
    assert stats["retries"] >= 1  # the killed worker's connection was retried

    # The supervisor noticed, cleaned up and restarted the worker.
    wait_until(lambda: "restarting" in receiver.log(), 10, "the restart to be logged")
    assert f"(pid {victim}) died" in receiver.log()
    assert not pid_alive(victim)
    now = receiver.workers()
    assert len(now) == 2 and victim not in now
    deadline = time.monotonic() + 10
    while temps_under(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert temps_under(out) == []
    assert receiver.process.poll() is None


def test_workers_exit_when_the_receiver_is_killed(receivers, tmp_path: Path) -> None:
    """kill -9 of the receiver itself: its workers must not live on holding the port."""
    receiver = receivers(tmp_path / "out", "--workers", "2")
    workers = receiver.workers()
    assert len(workers) == 2
    os.kill(receiver.pid, signal.SIGKILL)
    receiver.process.wait(5)
    wait_until(
        lambda: not any(pid_alive(pid) for pid in workers), 10, "the orphaned workers to exit"
    )
    # The port is free again: a new receiver can take it.
    again = receivers(tmp_path / "out2", "--workers", "2", port=receiver.port)
    assert len(again.workers()) == 2
