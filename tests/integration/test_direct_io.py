"""`camxfer recv --direct-io` on a real receiver while another writer keeps the machine's page
cache dirty, as cameras writing their rings on the same host do: `auto` switches to O_DIRECT
(and says so in its debug log), `never` does not, and with either every byte lands."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camxfer.recv.direct import OTHERS_DIRTY_BYTES
from camxfer.recv.landing import dirty_bytes
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
