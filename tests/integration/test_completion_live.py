"""Frames that are still being written, not written yet, never written, or deleted under the
sender: each lands whole or is reported, and the sender never hangs on one.

Writers here are threads of the test writing real files the way cameras do (in frame order,
holding a frame open while it is written). Waits are bounded by the subprocess timeouts.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
    SendResult,
    finish_sender,
    frame_bytes,
    frame_name,
    make_frames,
    run_sender,
    send_command,
    temps_under,
    tree_hashes,
    wait_until,
)


def write_slowly(path: Path, data: bytes, pieces: int, pause: float) -> None:
    """Write `data` in `pieces` chunks, holding the file open and pausing between chunks."""
    step = -(-len(data) // pieces)
    with open(path, "wb") as f:
        for start in range(0, len(data), step):
            f.write(data[start : start + step])
            f.flush()
            time.sleep(pause)


def sender_watching(pid: int) -> bool:
    """The sender has set up its inotify watch (it lists the folder right after)."""
    try:
        return any(
            os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
            for fd in os.listdir(f"/proc/{pid}/fd")
        )
    except OSError:
        return False


class Background:
    """Runs `target` in a thread; `join()` re-raises what it raised."""

    def __init__(self, target: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(target,), daemon=True)
        self.thread.start()

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "writer thread did not finish"
        if self.error:
            raise self.error


POLLING = pytest.mark.parametrize("watch", [[], ["--no-inotify"]], ids=["inotify", "polling"])


def sender_started(pid: int, watch: list[str]) -> bool:
    """The sender is past start-up: watching with inotify, or (polling) has run a while."""
    if watch:
        time.sleep(1.0)
        return True
    return sender_watching(pid)


def start_mtime_toucher(path: Path) -> subprocess.Popen:
    """A process changing `path`'s mtime without pause, so every read of it sees a change."""
    script = (
        "import os, sys\n"
        "tick = 10**9\n"
        "while True:\n"
        "    tick += 1\n"
        "    os.utime(sys.argv[1], ns=(tick, tick))\n"
    )
    return subprocess.Popen([sys.executable, "-c", script, str(path)])


@POLLING
def test_slowly_written_frames_land_equal_to_their_final_content(
    receivers, senders, src: Path, out: Path, watch: list[str]
) -> None:
    receiver = receivers(out)
    contents = {frame_name(n): frame_bytes(300_000 + n, n) for n in range(1, 4)}
    sender = senders(
        src, receiver.port, "--start-at", frame_name(1), "--max-files", "3", "--json-stats", *watch
    )
    wait_until(lambda: sender_started(sender.pid, watch), 20, "the sender to start")

    def camera() -> None:
        for name, data in contents.items():
            write_slowly(src / name, data, pieces=6, pause=0.1)

    writer = Background(camera)
    result = finish_sender(sender)
    writer.join()
    assert result.returncode == 0, result.stderr
    assert {n: (out / n).read_bytes() for n in contents} == contents
    assert result.stats["files"] == 3


@POLLING
def test_frames_that_do_not_exist_yet_are_waited_for(
    receivers, senders, src: Path, out: Path, watch: list[str]
) -> None:
    receiver = receivers(out)
    sender = senders(
        src,
        receiver.port,
        "--start-after",
        frame_name(99),
        "--max-files",
        "5",
        "--json-stats",
        *watch,
    )
    wait_until(lambda: sender_started(sender.pid, watch), 20, "the sender to start")
    time.sleep(0.3)  # the sender now polls an empty folder
    assert sender.poll() is None, "the sender gave up on frames that do not exist yet"

    def camera() -> None:
        for number in range(95, 108):  # older frames, the five asked for, and later ones
            (src / frame_name(number)).write_bytes(frame_bytes(20_000, number))
            time.sleep(0.02)

    writer = Background(camera)
    result = finish_sender(sender)
    writer.join()
    assert result.returncode == 0, result.stderr
    assert sorted(tree_hashes(out)) == [frame_name(n) for n in range(100, 105)]
    for number in range(100, 105):
        assert (out / frame_name(number)).read_bytes() == frame_bytes(20_000, number)


def test_missing_frame_is_reported_after_frame_timeout(receivers, src: Path, out: Path) -> None:
    make_frames(src, 10)
    (src / frame_name(5)).unlink()
    receiver = receivers(out)
    result = run_sender(
        src, receiver.port, "--max-files", "10", "--frame-timeout", "1", "--json-stats", timeout=30
    )
    assert result.returncode == 1
    stats = result.stats
    assert (stats["files"], stats["missing"], stats["failed"]) == (9, 1, 0)
    assert {"name": frame_name(5), "reason": "missing: never appeared"} in stats["skipped"]
    assert sorted(tree_hashes(out)) == [frame_name(n) for n in range(1, 11) if n != 5]
    assert tree_hashes(out) == {n: h for n, h in tree_hashes(src).items()}


def test_missing_frame_does_not_hold_back_later_frames(
    receivers, senders, src: Path, out: Path
) -> None:
    make_frames(src, 10)
    (src / frame_name(3)).unlink()
    receiver = receivers(out)
    sender = senders(
        src, receiver.port, "--max-files", "10", "--frame-timeout", "30", "--json-stats"
    )
    # Frames after the gap land while the gap is still being waited for.
    expected = {frame_name(n) for n in range(1, 11) if n != 3}
    wait_until(lambda: set(tree_hashes(out)) == expected, 20, "the frames after the gap")
    assert sender.poll() is None  # still waiting for frame 3
    # It turns up after all, late and written in pieces: the later frames that exist say
    # nothing about whether this one is finished, so it must not be sent half written.
    late = frame_bytes(500_000, 3)
    write_slowly(src / frame_name(3), late, pieces=5, pause=0.1)
    result = finish_sender(sender)
    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 10 and result.stats["missing"] == 0
    assert (out / frame_name(3)).read_bytes() == late


def test_backlog_file_deleted_before_it_is_read_is_reported(
    receivers, senders, src: Path, out: Path
) -> None:
    """--once: frame 3 is judged complete, then deleted while the sender still waits for the
    last frame of the backlog (written continuously); it is reported vanished, the rest lands."""
    make_frames(src, 10)
    receiver = receivers(out)
    last = src / frame_name(11)
    stop = threading.Event()

    def camera() -> None:
        with open(last, "wb") as f:
            while not stop.is_set():
                f.write(b"x" * 1000)
                f.flush()
                time.sleep(0.01)

    writer = Background(camera)
    wait_until(last.exists, 5, "the frame being written")
    sender = senders(src, receiver.port, "--once", "--stable-ms", "300", "--json-stats")
    wait_until(lambda: sender_watching(sender.pid), 20, "the sender to start watching")
    time.sleep(0.5)  # the backlog is listed; frames 1..10 are judged complete
    (src / frame_name(3)).unlink()
    stop.set()
    writer.join()
    result = finish_sender(sender)
    assert result.returncode == 1
    stats = result.stats
    assert (stats["files"], stats["vanished"]) == (10, 1), result.stderr
    assert any(s["name"] == frame_name(3) for s in stats["skipped"])
    landed = tree_hashes(out)
    assert sorted(landed) == sorted(frame_name(n) for n in range(1, 12) if n != 3)
    assert landed == {n: h for n, h in tree_hashes(src).items() if n in landed}
    assert temps_under(out) == []


def test_backlog_file_deleted_before_it_is_complete_is_reported(
    receivers, senders, src: Path, out: Path
) -> None:
    """--once: the last backlog frame never settles and is then deleted: reported, no hang."""
    make_frames(src, 6)
    receiver = receivers(out)
    last = src / frame_name(7)
    stop = threading.Event()

    def camera() -> None:
        with open(last, "wb") as f:
            while not stop.is_set():
                f.write(b"x" * 1000)
                f.flush()
                time.sleep(0.01)
        last.unlink()

    writer = Background(camera)
    wait_until(last.exists, 5, "the frame being written")
    sender = senders(src, receiver.port, "--once", "--stable-ms", "300", "--json-stats")
    wait_until(lambda: sender_watching(sender.pid), 20, "the sender to start watching")
    time.sleep(0.5)
    stop.set()
    writer.join()
    result = finish_sender(sender)
    assert result.returncode == 1
    stats = result.stats
    assert (stats["files"], stats["vanished"]) == (6, 1), result.stderr
    assert {s["name"] for s in stats["skipped"]} == {frame_name(7)}
    assert tree_hashes(out) == tree_hashes(src)


def test_ring_buffer_deleting_frames_under_the_sender(
    receivers, senders, src: Path, out: Path
) -> None:
    """A camera writes frames and deletes all but the newest few, as a ring buffer does.
    Whatever lands is byte-identical to what the camera wrote under that name; every frame of
    the range is accounted for (landed, vanished or missing); nothing torn, no temps, no hang."""
    receiver = receivers(out)
    total, keep = 200, 2
    sender = senders(
        src,
        receiver.port,
        "--start-at",
        frame_name(1),
        "--max-files",
        str(total),
        "--frame-timeout",
        "0.5",
        "--conns",
        "1",
        "--window",
        "1",
        "--json-stats",
    )
    wait_until(lambda: sender_watching(sender.pid), 20, "the sender to start watching")

    def camera() -> None:
        for number in range(1, total + 1):
            path = src / frame_name(number)
            tmp = src / f".{frame_name(number)}.tmp"
            tmp.write_bytes(frame_bytes(200_000, number))
            tmp.rename(path)
            old = src / frame_name(number - keep)
            if number > keep:
                old.unlink()

    writer = Background(camera)
    writer.join()
    result = finish_sender(sender)
    stats = result.stats
    landed = tree_hashes(out)
    assert stats["files"] == len(landed)
    assert stats["files"] + stats["vanished"] + stats["missing"] + stats["failed"] == total
    assert result.returncode == (0 if len(landed) == total else 1)

    for name, digest in landed.items():
        number = int(name.rsplit("_", 1)[1].split(".")[0])
        assert digest == hashlib.sha256(frame_bytes(200_000, number)).hexdigest(), name
    assert temps_under(out) == []


def test_sigterm_stops_a_continuous_sender_promptly_with_stats(
    receivers, senders, src: Path, out: Path
) -> None:
    make_frames(src, 5)
    receiver = receivers(out)
    sender = senders(src, receiver.port, "--json-stats")
    wait_until(lambda: len(tree_hashes(out)) == 5, 20, "the first frames to land")
    os.kill(sender.pid, signal.SIGTERM)
    result = finish_sender(sender, timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 5
    assert tree_hashes(out) == tree_hashes(src)


def test_file_changing_under_every_read_is_reported_not_hung_on(
    receivers, senders, src: Path, out: Path
) -> None:
    """Frame 1 is complete by lookahead (frames 2..6 exist) but its mtime changes all the
    time, so every read of it sees a change: after a bounded number of rechecks it is
    reported failed, the rest lands, nothing lands under its name, and --once ends."""
    make_frames(src, 6, size=4096)
    busy = src / frame_name(1)
    busy.unlink()
    with open(busy, "wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse: reading it takes long enough to see a change
    receiver = receivers(out)
    toucher = start_mtime_toucher(busy)
    try:
        sender = senders(src, receiver.port, "--once", "--conns", "2", "--json-stats")
        result = finish_sender(sender, timeout=60)
    finally:
        os.kill(toucher.pid, signal.SIGKILL)
        toucher.wait(10)
    assert result.returncode == 1, result.stdout + result.stderr
    stats = result.stats
    assert (stats["files"], stats["failed"]) == (5, 1), result.stderr
    assert [s["name"] for s in stats["skipped"]] == [frame_name(1)]
    assert "kept changing" in stats["skipped"][0]["reason"]
    assert sorted(tree_hashes(out)) == [frame_name(n) for n in range(2, 7)]
    assert temps_under(out) == []


@POLLING
def test_a_large_ring_sends_exactly_the_frames_from_the_start_on(
    receivers, senders, src: Path, out: Path, watch: list[str]
) -> None:
    """3,000 older frames sit in the ring; a camera then writes 120 new ones (some written in
    place, some renamed in), and the ring deletes the oldest as it goes. The sender, started at
    the first new frame, lands exactly the new frames, byte-identical: the listing kept up by
    the watcher between full reads misses none and picks up none of the old."""
    receiver = receivers(out)
    first, old, new = 3_000, 3_000, 120
    for number in range(first - old, first):
        (src / frame_name(number)).write_bytes(b"old")
    sender = senders(
        src,
        receiver.port,
        "--start-at",
        frame_name(first),
        "--max-files",
        str(new),
        "--json-stats",
        *watch,
    )
    wait_until(lambda: sender_started(sender.pid, watch), 20, "the sender to start")

    def camera() -> None:
        for number in range(first, first + new):
            data = frame_bytes(100_000, number)
            if number % 3:
                (src / frame_name(number)).write_bytes(data)
            else:
                staged = src / f".{frame_name(number)}.tmp"
                staged.write_bytes(data)
                staged.rename(src / frame_name(number))
            (src / frame_name(number - old)).unlink()
            time.sleep(0.005)

    writer = Background(camera)
    writer.join()
    result = finish_sender(sender)
    assert result.returncode == 0, result.stderr[-2000:]
    landed = tree_hashes(out)
    assert sorted(landed) == [frame_name(n) for n in range(first, first + new)]
    for number in range(first, first + new):
        expected = hashlib.sha256(frame_bytes(100_000, number)).hexdigest()
        assert landed[frame_name(number)] == expected
    assert result.stats["files"] == new
    assert temps_under(out) == []


@pytest.mark.parametrize("settle", ["500", "0"])
def test_frames_with_an_mtime_in_the_future_land(
    receivers, src: Path, out: Path, settle: str
) -> None:
    """A camera host whose clock runs ahead of the sender's (a network share, a copier that
    keeps timestamps): the frames' mtimes lie in the future, so their age says nothing. They
    are whole and unchanging, and must land; the last ones (no later frames) were reported
    'still being written' after 5 s, whatever --settle-ms."""
    make_frames(src, 8, age=-3600.0)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--json-stats", "--settle-ms", settle)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = result.stats
    assert (stats["files"], stats["failed"], stats["skipped"]) == (8, 0, [])
    assert tree_hashes(out) == tree_hashes(src)


@POLLING
@pytest.mark.parametrize("how", ["deleted", "moved away"])
def test_source_folder_deleted_and_made_again_under_a_continuous_sender(
    receivers, senders, src: Path, out: Path, watch: list[str], how: str
) -> None:
    """The camera software removes its ring folder (or moves it aside) and makes it again:
    the sender waits for it and sends the frames written into the new folder. It died with
    a FileNotFoundError traceback at its next listing, and sent nothing more."""
    make_frames(src, 5)
    receiver = receivers(out)
    sender = senders(src, receiver.port, "--max-files", "10", "--json-stats", *watch)
    wait_until(lambda: len(tree_hashes(out)) == 5, 20, "the first frames to land")
    expected = tree_hashes(src)
    if how == "deleted":
        for path in src.iterdir():
            path.unlink()
        src.rmdir()
    else:
        src.rename(src.with_name("src.old"))
    time.sleep(1.5)  # ordering only: the sender lists the folder (in full) while it is gone
    make_frames(src, 5, first=6)
    expected.update(tree_hashes(src))
    result = finish_sender(sender, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (result.stats["files"], result.stats["skipped"]) == (10, [])
    assert tree_hashes(out) == expected


@pytest.mark.parametrize("then", ["settles", "is deleted"])
def test_a_file_sent_back_for_a_recheck_is_not_dropped_at_the_end(
    receivers, senders, src: Path, out: Path, then: str
) -> None:
    """Name mode, --max-files 3: alpha.raw changes while it is read, so it goes back to be
    judged again; bravo and charlie land. The run ended there, exit 0 with 2 files, alpha
    neither sent nor reported. Now it waits for alpha: sent once it settles, or reported
    vanished once it is deleted."""
    busy = src / "alpha.raw"
    with open(busy, "wb") as f:
        f.truncate(32 * 1024 * 1024)  # sparse: reading it takes long enough to see a change
    for name in ("bravo.raw", "charlie.raw"):
        (src / name).write_bytes(os.urandom(1000))
        os.utime(src / name, (time.time() - 5, time.time() - 5))
    receiver = receivers(out)
    toucher = start_mtime_toucher(busy)
    try:
        wait_until(lambda: busy.stat().st_mtime_ns > 10**9, 10, "the toucher to start")
        sender = senders(
            src, receiver.port, "--pattern", "*.raw", "--max-files", "3", "--timeout", "30",
            "--json-stats",
        )  # fmt: skip
        wait_until(lambda: len(tree_hashes(out)) == 2, 20, "bravo and charlie to land")
    finally:
        os.kill(toucher.pid, signal.SIGKILL)
        toucher.wait(10)
    if then == "is deleted":
        busy.unlink()
    result = finish_sender(sender, timeout=40)
    stats = result.stats
    if then == "settles":
        assert result.returncode == 0, result.stderr
        assert stats["files"] == 3
        assert tree_hashes(out) == tree_hashes(src)
    else:
        assert result.returncode == 1, result.stderr
        assert (stats["files"], stats["vanished"]) == (2, 1), result.stderr
        assert [s["name"] for s in stats["skipped"]] == ["alpha.raw"]


def test_a_stray_frame_with_a_huge_number_leaves_a_gap_counted_not_stored(
    receivers, src: Path, out: Path
) -> None:
    """Frames 1..5 and a stray frame 999999999 (a test frame left behind, a counter jump):
    the gap between them ends after --frame-timeout. The sender marked each of its billion
    numbers final, one by one in a set: under a 2 GiB address-space limit it died of
    MemoryError (without one it took the machine's memory)."""
    make_frames(src, 5)
    make_frames(src, 1, first=999_999_999)
    receiver = receivers(out)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    done = subprocess.run(
        send_command(
            src, receiver.port, "--frame-timeout", "0.5", "--timeout", "4", "--json-stats"
        ),
        cwd=REPO,
        preexec_fn=limit_memory,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = SendResult(done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 1, result.stderr
    stats = result.stats
    assert (stats["files"], stats["missing"]) == (6, 999_999_999 - 6)
    assert tree_hashes(out) == tree_hashes(src)
