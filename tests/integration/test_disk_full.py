"""The receiver's disk fills up mid-transfer, then space is freed and the rest lands.

The receiver lands on a small tmpfs (8 MiB) already partly filled. Frames that no longer fit
are refused with NO_SPACE: the sender backs off, retries, then reports each of them failed
with the receiver's reason; no partial file stays, no temporary keeps space. After the filler
is removed, a rerun lands the rest (the ones already there count as duplicates).

Needs root to mount a tmpfs; skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name
from camxfer.manifest import MANIFEST_NAME
from tests.checker import check, snapshot
from tests.conftest import make_frames, run_sender, temps_under, wait_until

pytestmark = pytest.mark.timeout(120)

DISK_BYTES = 8 << 20
FILLER_BYTES = 3 << 20
FRAMES = 12
FRAME_BYTES = 512 << 10


@contextlib.contextmanager
def tmpfs(mount: Path, size: int = DISK_BYTES) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount)],
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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk") as mount:
        yield mount


def used_bytes(mount: Path) -> int:
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@pytest.mark.parametrize("direct_io", ["never", "always"], ids=["buffered", "o-direct"])
def test_disk_full_is_reported_and_the_rest_lands_after_space_is_freed(
    small_disk: Path, receivers, src: Path, direct_io: str
) -> None:
    make_frames(src, FRAMES, size=FRAME_BYTES)
    expected = snapshot(src)
    filler = small_disk / "filler"
    filler.write_bytes(os.urandom(FILLER_BYTES))
    out = small_disk / "out"
    receiver = receivers(out, "--workers", "2", "--direct-io", direct_io)

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


def test_disk_full_reaches_the_event_report_and_a_repeat_trigger_lands_the_rest(
    tmp_path: Path,
) -> None:
    """Through the fleet: `camxfer receivers` lands on a full disk, the trigger server's
    event reports each frame that did not fit with the receiver's reason, and the same
    trigger after space is freed lands the rest, none twice."""
    from fleet_helpers import make_layout, receivers, trigger_server, write_frames

    layout = make_layout(tmp_path / "fleet", ["cam01"])
    write_frames(layout.src("cam01"), "cam01", range(15))
    expected = snapshot(layout.src("cam01"))
    event_bytes = sum(
        (layout.src("cam01") / frame_name("cam01", n)).stat().st_size for n in range(10)
    )
    with tmpfs(layout.dest("cam01"), size=event_bytes + (512 << 10)) as disk:
        filler = disk / "filler"
        filler.write_bytes(os.urandom(event_bytes // 2))  # about half the event fits
        with receivers(layout), trigger_server(layout, timeout=60):
            client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=10)
            event = client.trigger(frame_name("cam01", 0), "ball_full")["event"]
            status = client.wait(event, timeout=90)
            assert status["state"] == "failed", status
            camera = status["cameras"]["cam01"]
            assert 0 < camera["landed"] < 10 and camera["failed"] == 10 - camera["landed"]
            assert camera["problems"], camera
            for problem in camera["problems"]:
                assert "No space left on device" in problem["reason"], problem
            landed = layout.landed("cam01", "ball_full")
            wait_until(lambda: not temps_under(landed), 10, "temporaries to be removed")
            check(expected, landed).assert_ok()

            filler.unlink()
            again = client.trigger(frame_name("cam01", 0), "ball_full")
            assert again["event"] == event
            status = client.wait(event, timeout=90)
            assert status["state"] == "done", json.dumps(status["cameras"])
            selected = [frame_name("cam01", n) for n in range(10)]
            check(expected, landed, selected=selected, complete=True).assert_ok()
            assert len(set(os.listdir(landed)) - {MANIFEST_NAME}) == 10
