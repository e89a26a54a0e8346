"""A frame a camera is still writing when the sender starts must never land torn.

The live demo caught this: the trigger arrives while the newest frame is half written; the
writer pauses between pieces longer than --stable-ms, so stability alone calls it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import MANIFEST_NAME


@pytest.fixture
def receiver(receivers, tmp_path: Path):
    started = receivers(tmp_path / "out", "--use-dest-paths")
    return started.port, started.out_dir


def _slow_writer(path: Path, pieces: list[bytes], pause: float, started: threading.Event) -> None:
    with open(path, "wb", buffering=0) as f:
        f.write(pieces[0])
        started.set()
        for piece in pieces[1:]:
            time.sleep(pause)
            f.write(piece)


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "polling"])
def test_frame_half_written_when_sender_starts_lands_whole(receiver, tmp_path, inotify) -> None:
    port, out = receiver
    src = tmp_path / "ring"
    src.mkdir()
    name = "frame_cam01_000000100.jpg"
    pieces = [os.urandom(64 * 1024) for _ in range(6)]
    started = threading.Event()
    writer = threading.Thread(
        target=_slow_writer, args=(src / name, pieces, 0.08, started), daemon=True
    )
    writer.start()
    assert started.wait(5)
    time.sleep(0.03)  # the file is older than --stable-ms and not growing right now
    argv = [
        sys.executable,
        "-m",
        "camxfer",
        "send",
        "--src-dir",
        str(src),
        "--port",
        str(port),
        "--start-at",
        name,
        "--max-files",
        "1",
        "--dest-path",
        "ev",
        "--timeout",
        "30",
        "--json-stats",
    ]
    if not inotify:
        argv.append("--no-inotify")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    writer.join(5)
    assert result.returncode == 0, result.stderr
    landed = out / "ev" / name
    assert (
        hashlib.sha256(landed.read_bytes()).hexdigest()
        == hashlib.sha256(b"".join(pieces)).hexdigest()
    )


def test_once_reports_a_file_that_never_finishes_and_sends_the_rest(receiver, tmp_path) -> None:
    port, out = receiver
    src = tmp_path / "ring"
    src.mkdir()
    done = {f"frame_cam01_{n:09d}.jpg": os.urandom(10_000) for n in range(3)}
    for name, data in done.items():
        (src / name).write_bytes(data)
    stop = threading.Event()

    def endless_writer() -> None:
        with open(src / "frame_cam01_000000003.jpg", "wb", buffering=0) as f:
            while not stop.is_set():
                f.write(b"x" * 100)
                time.sleep(0.02)

    writer = threading.Thread(target=endless_writer, daemon=True)
    writer.start()
    try:
        time.sleep(0.1)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "camxfer",
                "send",
                "--src-dir",
                str(src),
                "--port",
                str(port),
                "--once",
                "--frame-timeout",
                "1",
                "--dest-path",
                "ev",
                "--json-stats",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop.set()
        writer.join(5)
    assert result.returncode == 1, result.stderr
    stats = json.loads(result.stdout)
    assert stats["files"] == 3 and stats["failed"] == 1
    assert [s["name"] for s in stats["skipped"]] == ["frame_cam01_000000003.jpg"]
    assert sorted(p.name for p in (out / "ev").iterdir()) == sorted([*done, MANIFEST_NAME])
    for name, data in done.items():
        assert (out / "ev" / name).read_bytes() == data
