"""A partial file is never visible under its final name, and no temporary outlives the run.

While large frames stream in, a watcher thread lists the landing folder as fast as it can;
every file it sees under a final name must already have its full size. At the end every file
is hash-identical to its source.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from tests.conftest import (
    MANIFEST_NAME,
    TEMP_PREFIX,
    finish_sender,
    frame_bytes,
    frame_name,
    make_frames,
    run_sender,
    temps_under,
    tree_hashes,
    wait_until,
)

FILES = 20
SIZE = 16 * 1024 * 1024


class Observer(threading.Thread):
    """Lists `folder` continuously; records files seen under a final name with a wrong size."""

    def __init__(self, folder: Path, sizes: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.sizes = sizes
        self.stop = threading.Event()
        self.torn: list[tuple[str, int]] = []
        self.unknown: set[str] = set()
        self.looks = 0
        self.seen_final: set[str] = set()
        self.seen_temp = False

    def run(self) -> None:
        while not self.stop.is_set():
            self.looks += 1
            try:
                entries = list(os.scandir(self.folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    self.seen_temp = True
                    continue
                if entry.name == MANIFEST_NAME:
                    continue  # the run's manifest: test_manifest.py watches it
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                expected = self.sizes.get(entry.name)
                if expected is None:
                    self.unknown.add(entry.name)
                elif size != expected:
                    self.torn.append((entry.name, size))
                else:
                    self.seen_final.add(entry.name)


def test_partial_file_is_never_visible(receivers, src: Path, out: Path) -> None:
    paths = make_frames(src, FILES, size=SIZE)
    sizes = {p.name: p.stat().st_size for p in paths}
    receiver = receivers(out, "--workers", "2")
    observer = Observer(out, sizes)
    observer.start()
    try:
        result = run_sender(src, receiver.port, "--once", "--conns", "4", "--json-stats")
    finally:
        observer.stop.set()
        observer.join(10)
    assert result.returncode == 0, result.stderr
    assert observer.torn == []
    assert observer.unknown == set()
    assert observer.seen_temp, "the observer never saw a transfer in progress"
    assert observer.seen_final == set(sizes)
    assert tree_hashes(out) == tree_hashes(src)
    assert temps_under(out) == []
    assert result.stats["files"] == FILES


def test_nested_destination_is_atomic_too(receivers, src: Path, out: Path) -> None:
    make_frames(src, 6, size=2 * 1024 * 1024)
    receiver = receivers(out, "--use-dest-paths")
    result = run_sender(src, receiver.port, "--once", "--dest-path", "ball_3/camera01")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out / "ball_3" / "camera01") == tree_hashes(src)
    assert temps_under(out) == []


def test_receiver_stopped_mid_transfer_leaves_only_whole_files(
    receivers, senders, src: Path, out: Path
) -> None:
    """SIGTERM to a receiver while a camera is still producing frames: files in flight finish
    or vanish with their temps, no further file is taken, the receiver exits 0, and the
    sender reports what it could not land."""
    total = 200
    receiver = receivers(out, "--workers", "2")
    sender = senders(
        src,
        receiver.port,
        "--start-at",
        frame_name(1),
        "--max-files",
        str(total),
        "--conns",
        "4",
        "--retries",
        "0",
        "--json-stats",
    )
    stop = threading.Event()

    def camera() -> None:
        for number in range(1, total + 1):
            if stop.is_set():
                return
            tmp = src / f".{frame_name(number)}"
            tmp.write_bytes(frame_bytes(1024 * 1024, number))
            tmp.rename(src / frame_name(number))
            time.sleep(0.005)

    writer = threading.Thread(target=camera, daemon=True)
    writer.start()
    try:
        wait_until(lambda: any(n.endswith(".jpg") for n in os.listdir(out)), 30, "a file to land")
        receiver.process.send_signal(signal.SIGTERM)
        assert receiver.process.wait(30) == 0
    finally:
        writer.join(30)
    assert "stopped" in receiver.log()
    assert temps_under(out) == []
    landed = tree_hashes(out)
    source = tree_hashes(src)
    assert landed and all(source[name] == digest for name, digest in landed.items())
    result = finish_sender(sender)
    assert result.returncode == 1  # not everything landed, and the sender says so
    assert result.stats["files"] == len(landed) < total
