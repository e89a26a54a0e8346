"""The link between camera host and storage host goes down mid-transfer and comes back.

Two network namespaces joined by a veth pair stand for the two hosts; the receiver runs in
one, the sender in the other, and a camera thread writes frames while the sender is live.
Mid-run the receiver's end of the veth is taken down for a few seconds: no RST arrives,
packets just vanish, so the sender must notice by its own deadline (--ack-timeout), back off,
reconnect once the link is back and resend what was not acknowledged. The checker then
requires every frame landed exactly once and whole, with no temporary left.

Needs root and `ip netns`; skipped with the reason otherwise. Names and addresses are unique
to the test (`cxf-` prefix, 10.250.x.0/30) and torn down in a finalizer.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.checker import settled, sha256_bytes
from tests.conftest import REPO, frame_bytes, frame_name, wait_until

pytestmark = pytest.mark.timeout(180)

FRAMES = 120
SIZE = 256 * 1024
FPS = 30


@dataclass
class Link:
    sender_ns: str
    receiver_ns: str
    sender_dev: str
    receiver_dev: str
    sender_ip: str
    receiver_ip: str

    def set_receiver_side(self, up: bool) -> None:
        ip("-n", self.receiver_ns, "link", "set", self.receiver_dev, "up" if up else "down")

    def set_sender_side(self, up: bool) -> None:
        ip("-n", self.sender_ns, "link", "set", self.sender_dev, "up" if up else "down")

    def established(self, port: int) -> int:
        """Established TCP connections on the receiver's `port`, seen from its namespace."""
        listing = subprocess.run(
            ["ip", "netns", "exec", self.receiver_ns, "ss", "-Htn", "state", "established",
             "sport", "=", f":{port}"],
            check=True, capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        return len(listing.stdout.splitlines())


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


@pytest.fixture
def link() -> Iterator[Link]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip`)")
    tag = f"{random.randrange(16**4):04x}"
    octet = random.randrange(256)
    found = Link(
        f"cxf-snd-{tag}",
        f"cxf-rcv-{tag}",
        f"cxfs{tag}",
        f"cxfr{tag}",
        f"10.250.{octet}.1",
        f"10.250.{octet}.2",
    )
    try:
        ip("netns", "add", found.sender_ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"`ip netns add` is not supported here: {exc.stderr.strip()}")
    try:
        ip("netns", "add", found.receiver_ns)
        ip(
            "link", "add", found.sender_dev, "netns", found.sender_ns, "type", "veth",
            "peer", "name", found.receiver_dev, "netns", found.receiver_ns,
        )  # fmt: skip
        for ns, dev, addr in (
            (found.sender_ns, found.sender_dev, found.sender_ip),
            (found.receiver_ns, found.receiver_dev, found.receiver_ip),
        ):
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield found
    finally:
        for ns in (found.sender_ns, found.receiver_ns):
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pids = subprocess.run(
                    ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10
                ).stdout.split()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
                ip("netns", "del", ns)


def in_ns(ns: str, *args: str, log: Path) -> subprocess.Popen:
    """`camxfer ARGS` inside namespace `ns` (ip netns exec execs it: the pid is camxfer's)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "camxfer", *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if "send" in args else out,
            stderr=out,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_link_down_mid_transfer_is_survived(link: Link, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    recv_log, send_log = tmp_path / "recv.log", tmp_path / "send.log"
    port = 50000 + random.randrange(10000)
    receiver = in_ns(
        link.receiver_ns,
        "recv", "--listen-ip", link.receiver_ip, "--port", str(port), "--out-dir", str(out),
        "--workers", "2", "--io-timeout", "5",
        log=recv_log,
    )  # fmt: skip
    sender = None
    try:
        wait_until(lambda: "listening on" in recv_log.read_text(), 20, "the receiver")
        sender = in_ns(
            link.sender_ns,
            "send", "--src-dir", str(src), "--host", link.receiver_ip, "--port", str(port),
            "--start-at", frame_name(1), "--max-files", str(FRAMES), "--conns", "2",
            "--ack-timeout", "2", "--retries", "30", "--timeout", "120", "--json-stats",
            log=send_log,
        )  # fmt: skip
        expected = {frame_name(n): sha256_bytes(frame_bytes(SIZE, n)) for n in range(1, FRAMES + 1)}

        def camera() -> None:
            start = time.monotonic()
            for number in range(1, FRAMES + 1):
                time.sleep(max(0.0, start + number / FPS - time.monotonic()))
                tmp = src / f".{frame_name(number)}"
                tmp.write_bytes(frame_bytes(SIZE, number))
                tmp.rename(src / frame_name(number))

        writer = threading.Thread(target=camera, daemon=True)
        writer.start()
        wait_until(lambda: len(os.listdir(out)) >= 20, 30, "the first frames to land")
        link.set_receiver_side(up=False)
        cut_at = len([n for n in os.listdir(out) if not n.startswith(".")])
        time.sleep(4.0)
        link.set_receiver_side(up=True)
        writer.join(30)
        stdout, _ = sender.communicate(timeout=120)
        stats = json.loads(stdout.strip().splitlines()[-1])
        assert sender.returncode == 0, send_log.read_text()
        assert cut_at < FRAMES, "the camera had finished before the cut"
        assert stats["retries"] >= 1, send_log.read_text()
        # Noticed by its own deadline: no ack in --ack-timeout, or no room to send in it.
        log = send_log.read_text()
        assert "no reply from the receiver" in log or "stalled past the timeout" in log, log
        settled(expected, out, stats, complete=True, timeout=20).assert_ok()
        print(f"\nlink down 4 s after {cut_at}/{FRAMES} frames; retries {stats['retries']}")
    finally:
        if sender is not None:
            stop(sender)
        stop(receiver)


def test_receiver_drops_the_idle_connection_of_a_vanished_sender(
    link: Link, tmp_path: Path
) -> None:
    """A sender host that vanishes (its link goes down for good) leaves an idle connection
    the receiver would keep until --idle-timeout (600 s), holding a --max-conns slot:
    keepalive probes find it dead within about --io-timeout."""
    out, recv_log = tmp_path / "out", tmp_path / "recv.log"
    port = 50000 + random.randrange(10000)
    receiver = in_ns(
        link.receiver_ns,
        "recv", "--listen-ip", link.receiver_ip, "--port", str(port), "--out-dir", str(out),
        "--io-timeout", "3",
        log=recv_log,
    )  # fmt: skip
    client = None
    try:
        wait_until(lambda: "listening on" in recv_log.read_text(), 20, "the receiver")
        script = (
            "import socket, sys, time\n"
            "from camxfer import protocol\n"
            f"s = socket.create_connection(({link.receiver_ip!r}, {port}), timeout=10)\n"
            "s.sendall(protocol.encode_hello())\n"
            "s.recv(100)\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n"
        )
        client = subprocess.Popen(
            ["ip", "netns", "exec", link.sender_ns, sys.executable, "-c", script],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None and client.stdout.readline().strip() == "ready"
        assert link.established(port) == 1
        link.set_sender_side(up=False)
        wait_until(lambda: link.established(port) == 0, 30, "the dead connection to be dropped")
        link.set_sender_side(up=True)
        assert receiver.poll() is None
    finally:
        if client is not None:
            client.kill()
            client.wait(10)
        stop(receiver)
