"""`camxfer recv --direct-io` on a real receiver while another writer keeps the machine's page
cache dirty, as cameras writing their rings on the same host do: `auto` switches to O_DIRECT
(and says so in its debug log), `never` does not, and with either every byte lands."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camxfer.recv import direct, session
from camxfer.recv.direct import OTHERS_DIRTY_BYTES
from camxfer.recv.inbox import Inbox
from camxfer.recv.landing import dirty_bytes
from camxfer.recv.server import ListenSettings, Worker, open_listener
from camxfer.recv.session import ReceiverSettings
from tests.conftest import make_frames, run_sender, tree_hashes, wait_until

pytestmark = pytest.mark.timeout(120)

RING_BYTES = 256 << 20  # rewritten over and over, so it stays dirty however writeback goes


@pytest.fixture
def busy_writer(tmp_path: Path) -> Iterator[None]:
    """A thread rewriting a 256 MiB file without syncing it, until the test ends."""
    ring = tmp_path / "ring.bin"
    stop = threading.Event()
    block = os.urandom(1 << 20)

    def write_ring() -> None:
        fd = os.open(ring, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while not stop.is_set():
                for offset in range(0, RING_BYTES, len(block)):
                    if stop.is_set():
                        break
                    os.pwrite(fd, block, offset)
        finally:
            os.close(fd)

    writer = threading.Thread(target=write_ring, daemon=True)
    writer.start()
    try:
        wait_until(
            lambda: (dirty_bytes() or 0) > 2 * OTHERS_DIRTY_BYTES,
            20,
            "the writer's data to be dirty",
        )
        yield
    finally:
        stop.set()
        writer.join()
        ring.unlink()  # its dirty pages are dropped, never written


@pytest.mark.parametrize("policy, lands_direct", [("auto", True), ("never", False)])
def test_auto_lands_with_o_direct_while_another_writer_is_busy(
    busy_writer: None, receivers, src: Path, out: Path, policy: str, lands_direct: bool
) -> None:
    make_frames(src, 24, size=300 << 10)
    receiver = receivers(out, "--direct-io", policy, "--verbose")
    result = run_sender(src, receiver.port, "--once", "--conns", "1", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(src)
    assert ("landing with O_DIRECT" in receiver.log()) is lands_direct


@contextlib.contextmanager
def receiver_in_process(settings: ReceiverSettings) -> Iterator[int]:
    """A receiver worker in this process (so its module can be looked into), on a real
    socket; yields its port."""
    listen = ListenSettings(listen_ip="127.0.0.1")
    worker = Worker(open_listener(listen, reuseport=False), settings, listen)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker.listener.getsockname()[1]
    finally:
        worker.stop.set()
        thread.join(10)


@pytest.fixture
def worker_in_process(out: Path) -> Iterator[int]:
    with receiver_in_process(ReceiverSettings(out)) as port:
        yield port


def test_bodies_landing_with_o_direct_are_received_straight_into_the_stage(
    src: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every byte lands, and only the start of the first body (read with its header) and a
    few bytes after each later header pass through the connection's buffer: the rest is
    received into the aligned stage, not copied there."""
    through_buffer = 0
    take = Inbox.take

    def counted_take(self: Inbox, limit: int) -> memoryview:
        nonlocal through_buffer
        chunk = take(self, limit)
        through_buffer += len(chunk)
        return chunk

    monkeypatch.setattr(Inbox, "take", counted_take)
    frames = make_frames(src, 8, size=3 * (1 << 20) + 123)
    with receiver_in_process(ReceiverSettings(out, direct_io="always")) as port:
        result = run_sender(src, port, "--once", "--conns", "1", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(src)
    assert through_buffer <= session.BUFFER_BYTES + len(frames) * session.DIRECT_HEADER_FILL
    assert through_buffer < sum(f.stat().st_size for f in frames) // 4


@pytest.mark.parametrize("slow", [True, False], ids=["slow-page-cache", "fast-page-cache"])
def test_auto_lands_with_o_direct_while_the_page_cache_measures_slow(
    worker_in_process: int,
    src: Path,
    out: Path,
    slow: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Where writes into the page cache cost more CPU per byte than the threshold (a VM
    whose memory balloon took back the free pages), `auto` lands the next files directly.
    The threshold stands in for the slow memory, which cannot be made on demand."""
    monkeypatch.setattr(direct, "SLOW_PAGE_CACHE_BYTES_PER_S", 1e18 if slow else 0.0)
    monkeypatch.setattr(direct, "OTHERS_DIRTY_BYTES", 1 << 50)  # whatever else this host writes
    make_frames(src, 24, size=300 << 10)
    with caplog.at_level(logging.DEBUG, logger="camxfer.recv"):
        result = run_sender(src, worker_in_process, "--once", "--conns", "1", "--json-stats")
    assert result.returncode == 0, result.stderr
    # A file landed directly has at most its partial last page in the page cache (looked at
    # before anything reads the files).
    landed = list(out.rglob("*.jpg"))
    direct_files = [p for p in landed if resident_pages(p) <= 1]
    assert tree_hashes(out) == tree_hashes(src)
    switched = [r for r in caplog.records if getattr(r, "event", None) == "page_cache_cost"]
    assert bool(switched) is slow
    if slow:
        assert "auto lands files with O_DIRECT" in switched[0].getMessage()
        # The files measured before the first judgement, and maybe a probe or two.
        assert len(direct_files) >= len(landed) - direct.MIN_READINGS - 2
    else:
        assert direct_files == []


def resident_pages(path: Path) -> int:
    """Pages of `path` in the page cache (util-linux fincore)."""
    done = subprocess.run(
        ["fincore", "--raw", "--noheadings", "--output", "PAGES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[0])
