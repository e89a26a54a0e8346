"""A receiver keeps an open file per received, unacknowledged file until its group commit, so
it lifts its own soft limit on open files to the hard limit: a deep sender window must not
run it out of descriptors."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import make_frames, run_sender, tree_hashes

LOW_SOFT_LIMIT = 64  # far below what three connections with a window of 48 keep open


@contextlib.contextmanager
def soft_open_file_limit(limit: int) -> Iterator[int]:
    """This process's soft limit lowered to `limit` (children inherit it); yields the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def soft_limit_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open-file limit listed for pid {pid}")


def test_a_receiver_started_with_a_low_limit_lands_a_deep_window_without_retries(
    receivers, src: Path, out: Path
) -> None:
    make_frames(src, 240, size=20_000)
    with soft_open_file_limit(LOW_SOFT_LIMIT) as hard:
        receiver = receivers(out, "--workers", "1")

    lifted = hard if hard != resource.RLIM_INFINITY else 1 << 20  # to nr_open, if unlimited
    for pid in (receiver.pid, *receiver.workers()):
        assert soft_limit_of(pid) == lifted
    result = run_sender(
        src, receiver.port, "--once", "--conns", "3", "--window", "48", "--json-stats"
    )

    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 240 and result.stats["retries"] == 0
    assert tree_hashes(out) == tree_hashes(src)
