"""Slow-loris: hundreds of connections that send nothing, or a byte a second, must not starve
a receiver. Each is closed at its deadline (--io-timeout for a handshake or message that does
not complete, --idle-timeout between messages), connections over --max-conns are closed at
once, the receiver's open file count stays bounded, and a real sender keeps landing frames.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from camxfer import protocol
from tests.checker import settled, snapshot
from tests.conftest import make_frames, run_sender

pytestmark = pytest.mark.timeout(120)

SILENT = 100
DRIPPING = 100
MAX_CONNS = 64
IO_TIMEOUT = 2.0
IDLE_TIMEOUT = 3.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect_all(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        socks.append(sock)
    return socks


def closed_by_peer(sock: socket.socket) -> bool:
    """The receiver closed this connection (EOF or reset), without waiting for more."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_loris_connections_are_closed_and_real_senders_still_land(
    receivers, src: Path, out: Path
) -> None:
    make_frames(src, 20, size=64_000)
    expected = snapshot(src)
    receiver = receivers(
        out,
        "--max-conns", str(MAX_CONNS),
        "--io-timeout", str(IO_TIMEOUT),
        "--idle-timeout", str(IDLE_TIMEOUT),
    )  # fmt: skip
    baseline = open_fds(receiver.pid)
    # Drippers first, so they hold the receiver's slots; the silent ones come over the limit.
    dripping = connect_all(receiver.port, DRIPPING)
    silent = connect_all(receiver.port, SILENT)
    # A third drip a valid hello, a third a hello and then a file header, one byte a second;
    # the last third send hello and header at once, then drip the body of a 1 MB file.
    hello = protocol.encode_hello()
    header = protocol.FileHeader(1, "x.jpg", "", 1 << 20, bytes(16)).encode()
    streams = {}
    for index, sock in enumerate(dripping):
        if index % 3 == 2:
            sock.sendall(hello + header)
            streams[sock] = bytes(60)
        else:
            streams[sock] = hello if index % 3 else hello + header
    stop = threading.Event()
    peak = [0]

    def drip() -> None:
        offset = 0
        while not stop.is_set():
            for sock, data in streams.items():
                if offset < len(data):
                    with contextlib.suppress(OSError):
                        sock.send(data[offset : offset + 1])
            offset += 1
            peak[0] = max(peak[0], open_fds(receiver.pid))
            stop.wait(1.0)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        result = run_sender(
            src, receiver.port, "--once", "--conns", "2", "--retries", "30", "--json-stats"
        )
        assert result.returncode == 0, result.stderr
        settled(expected, out, result.stats, complete=True).assert_ok()
        # Every hostile connection is closed by its deadline (plus scheduling slack).
        deadline = time.monotonic() + IO_TIMEOUT + IDLE_TIMEOUT + 15
        open_ones = list(silent) + list(dripping)
        while open_ones and time.monotonic() < deadline:
            open_ones = [s for s in open_ones if not closed_by_peer(s)]
            time.sleep(0.2)
        assert open_ones == [], f"{len(open_ones)} slow connections still open"
    finally:
        stop.set()
        dripper.join(5)
        for sock in silent + dripping:
            sock.close()
    deadline = time.monotonic() + 15
    while open_fds(receiver.pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(receiver.pid) <= baseline, "descriptors leaked"
    # Per connection: its socket, and inside a file its temporary and its folder.
    assert peak[0] <= baseline + 3 * MAX_CONNS + 8, (baseline, peak[0])
    assert receiver.process.poll() is None
    print(
        f"\nslow-loris: {SILENT + DRIPPING} connections closed; receiver fds "
        f"{baseline} at rest, at most {peak[0]} under attack (--max-conns {MAX_CONNS})"
    )
