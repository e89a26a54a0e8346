"""What a camera's ring buffer does to frames before and while they are sent, beyond what
test_completion_live and test_torn_frames cover: very large and empty frames, frames that
appear out of order, and a frame overwritten in place while its bytes are on the wire.

Whatever happens, the checker requires that a landed frame is byte-identical to a version the
camera wrote under that name (never a mix), that every acknowledged frame landed, that no
temporary is left, and that the run ends.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.checker import settled, sha256_bytes, snapshot
from tests.conftest import (
    finish_sender,
    frame_bytes,
    frame_name,
    make_frames,
    run_sender,
    temps_under,
    wait_until,
)
from tests.relay import Relay, Toxics

pytestmark = pytest.mark.timeout(180)


def test_very_large_and_empty_frames_land_whole(receivers, src: Path, out: Path) -> None:
    make_frames(src, 6, size=50_000)
    (src / frame_name(2)).write_bytes(b"")
    big = src / frame_name(4)
    with open(big, "wb") as f:
        for piece in range(64):
            f.write(frame_bytes(1 << 20, 1000 + piece))
    os.utime(big, (time.time() - 5, time.time() - 5))
    os.utime(src / frame_name(2), (time.time() - 5, time.time() - 5))
    expected = snapshot(src)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--conns", "2", "--json-stats", timeout=120)
    assert result.returncode == 0, result.stderr
    settled(expected, out, result.stats, complete=True).assert_ok()
    assert (out / frame_name(2)).stat().st_size == 0
    assert (out / frame_name(4)).stat().st_size == 64 << 20


def test_frames_appearing_out_of_order_all_land(receivers, senders, src: Path, out: Path) -> None:
    """A writer that finishes frames out of order (two threads of a camera, a slow disk):
    later numbers exist before earlier ones, some written slowly in place."""
    order = [3, 1, 2, 6, 5, 4, 9, 7, 8, 10]
    data = {n: frame_bytes(100_000 + n, n) for n in order}
    receiver = receivers(out)
    sender = senders(
        src,
        receiver.port,
        "--start-at",
        frame_name(1),
        "--max-files",
        str(len(order)),
        "--frame-timeout",
        "10",
        "--timeout",
        "60",
        "--json-stats",
    )
    time.sleep(0.5)
    for index, number in enumerate(order):
        path = src / frame_name(number)
        if index % 3 == 0:  # in place, in pieces, with pauses a stability check could misread
            with open(path, "wb") as f:
                for start in range(0, len(data[number]), 25_000):
                    f.write(data[number][start : start + 25_000])
                    f.flush()
                    time.sleep(0.03)
        else:
            tmp = src / f".{frame_name(number)}.tmp"
            tmp.write_bytes(data[number])
            tmp.rename(path)
        time.sleep(0.05)
    result = finish_sender(sender, timeout=90)
    assert result.returncode == 0, result.stderr
    expected = {frame_name(n): sha256_bytes(d) for n, d in data.items()}
    settled(expected, out, result.stats, complete=True).assert_ok()


@pytest.mark.parametrize("how", ["in-place", "truncate-and-rewrite"])
def test_frame_overwritten_while_on_the_wire_never_lands_torn(
    receivers, src: Path, out: Path, how: str
) -> None:
    """The ring wraps onto a frame whose bytes are being sent (a slow link makes the send
    take seconds): the receiver's checksum refuses the mixed bytes, the sender checks the
    frame again and sends the version now on disk; the old or the new version lands whole."""
    size = 8 << 20
    make_frames(src, 3, size=64 << 10)
    victim = src / frame_name(1)
    old = frame_bytes(size, 1)
    victim.write_bytes(old)
    os.utime(victim, (time.time() - 5, time.time() - 5))
    new = frame_bytes(size, 777)
    expected = snapshot(src)
    expected[frame_name(1)] = {sha256_bytes(old), sha256_bytes(new)}
    receiver = receivers(out)
    # Small buffers on both sides of the slow link: the sender is still reading the frame
    # from disk (sendfile) when the ring overwrites it, not just draining a socket buffer.
    link = Relay(("127.0.0.1", receiver.port), Toxics(latency=0.01), rcvbuf=64 << 10)
    with link as relay:
        done: dict[str, object] = {}

        def send() -> None:
            done["result"] = run_sender(
                src,
                relay.port,
                "--once",
                "--conns",
                "1",
                "--window",
                "1",
                "--sndbuf",
                str(64 << 10),
                "--json-stats",
            )

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        wait_until(lambda: temps_under(out), 30, "frame 1 to be on the wire")
        if how == "in-place":
            with open(victim, "r+b") as f:
                f.write(new)
        else:
            with open(victim, "wb") as f:
                for start in range(0, size, 1 << 20):
                    f.write(new[start : start + (1 << 20)])
                    f.flush()
                    time.sleep(0.02)
        thread.join(120)
    assert not thread.is_alive(), "the sender hung"
    result = done["result"]
    assert result.returncode == 0, result.stderr
    assert result.stats["retries"] >= 1  # the mixed bytes were refused and the frame resent
    verdict = settled(expected, out, result.stats, complete=True)
    verdict.assert_ok()
    assert verdict.landed[frame_name(1)] == sha256_bytes(new)
