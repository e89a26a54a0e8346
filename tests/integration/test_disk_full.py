"""The receiver's disk fills up mid-transfer, then space is freed and the rest lands.

The receiver lands on a small tmpfs (8 MiB) already partly filled. Frames that no longer fit
are refused with NO_SPACE: the sender backs off, retries, then reports each of them failed
with the receiver's reason; no partial file stays, no temporary keeps space. After the filler
is removed, a rerun lands the rest (the ones already there count as duplicates).

Needs root to mount a tmpfs; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checker import check, snapshot
from tests.conftest import make_frames, run_sender, temps_under, wait_until

pytestmark = pytest.mark.timeout(120)

DISK_BYTES = 8 << 20
FILLER_BYTES = 3 << 20
FRAMES = 12
FRAME_BYTES = 512 << 10


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        # Lazily, in case a process still has the folder open (it is gone when they close).
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def used_bytes(mount: Path) -> int:
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_disk_full_is_reported_and_the_rest_lands_after_space_is_freed(
    small_disk: Path, receivers, src: Path
) -> None:
    make_frames(src, FRAMES, size=FRAME_BYTES)
    expected = snapshot(src)
    filler = small_disk / "filler"
    filler.write_bytes(os.urandom(FILLER_BYTES))
    out = small_disk / "out"
    receiver = receivers(out, "--workers", "2")

    result = run_sender(
        src, receiver.port, "--once", "--conns", "2", "--retries", "2", "--json-stats"
    )
    stats = result.stats
    assert result.returncode == 1, result.stderr
    assert 0 < stats["files"] < FRAMES and stats["failed"] == FRAMES - stats["files"]
    for skipped in stats["skipped"]:
        assert "No space left on device" in skipped["reason"], skipped
    assert "No space left on device" in result.stderr
    assert "refused" in receiver.log()
    # What was acknowledged landed whole; nothing else is there, not even a temporary.
    wait_until(lambda: not temps_under(out), 10, "temporaries to be removed")
    verdict = check(expected, out, stats)
    verdict.assert_ok()
    landed_bytes = sum((out / name).stat().st_size for name in verdict.landed)
    assert used_bytes(small_disk) <= FILLER_BYTES + landed_bytes + (64 << 10)

    filler.unlink()
    again = run_sender(src, receiver.port, "--once", "--conns", "2", "--json-stats")
    assert again.returncode == 0, again.stderr
    assert again.stats["duplicates"] == stats["files"]
    check(expected, out, again.stats, complete=True).assert_ok()
    assert receiver.process.poll() is None
    print(f"\ndisk full: {stats['failed']} of {FRAMES} refused with NO_SPACE, all landed after")
