"""Bad, truncated, hostile or miscounted input: the connection gets an error and is closed, and
the receiver keeps landing files for real senders. Raw connections speak the protocol by hand
through `camxfer.protocol`, so each test controls exactly which bytes go on the wire.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camxfer import protocol
from camxfer.protocol import FileHeader, Reply, ReplyParser, Status, new_hasher
from tests.conftest import child_pids, make_frames, run_sender, temps_under, tree_hashes, wait_until


class Peer:
    """A raw client connection that reads replies one at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(10)
        self._parser = ReplyParser()
        self._pending: list[Reply] = []

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def reply(self) -> Reply | None:
        """The next reply, or None when the receiver closed the connection."""
        while not self._pending:
            data = self.sock.recv(4096)
            if not data:
                return None
            self._pending.extend(self._parser.feed(data))
        return self._pending.pop(0)

    def until_closed(self) -> list[Reply]:
        replies = []
        while (reply := self.reply()) is not None:
            replies.append(reply)
        return replies


def hello(port: int, count: int | None = None) -> Peer:
    peer = Peer(port)
    peer.send(protocol.encode_hello(count))
    reply = peer.reply()
    assert reply is not None and reply.status == Status.OK, reply
    return peer


def file_message(seq: int, name: str, data: bytes, dest: str = "") -> bytes:
    hasher = new_hasher()
    hasher.update(data)
    return FileHeader(seq, name, dest, len(data), hasher.digest()).encode() + data


def raw_header(name: bytes, dest: bytes, size: int, seq: int = 1) -> bytes:
    """A FILE header built without FileHeader's checks (for names it would refuse)."""
    fixed = struct.pack(
        "!BBHHHQQ16s", protocol.MessageType.FILE, 0, len(name), len(dest), 0, seq, size, bytes(16)
    )
    return fixed + name + dest


def assert_still_serving(port: int, src: Path, out: Path, subdir: str = "") -> None:
    """A real sender still lands files, byte-identical."""
    target = out / subdir if subdir else out
    before = set(tree_hashes(target)) if target.exists() else set()
    result = run_sender(src, port, "--once", *(("--dest-path", subdir) if subdir else ()))
    assert result.returncode == 0, result.stderr
    hashes = tree_hashes(target)
    assert {n: hashes[n] for n in tree_hashes(src)} == tree_hashes(src)
    assert set(hashes) >= before


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    make_frames(folder, 3)
    return folder


BAD_INPUTS = {
    "garbage": b"\x00\x13GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4,
    "bad-magic": b"XMAC" + protocol.encode_hello()[4:],
    "truncated-hello": protocol.encode_hello()[:7],
    "truncated-header": protocol.encode_hello() + file_message(1, "t.jpg", b"abc")[:20],
    "oversized-name-length": protocol.encode_hello() + raw_header(b"n" * 5000, b"", 10),
    "oversized-dest-length": protocol.encode_hello() + raw_header(b"n.jpg", b"d" * 5000, 10),
    "oversized-size": protocol.encode_hello() + raw_header(b"n.jpg", b"", 2**63),
    "unknown-type": protocol.encode_hello() + b"\x07" + bytes(protocol.FILE_HEADER_SIZE - 1),
    "wrong-version": protocol.encode_hello(version=99),
    "unknown-hello-flags": protocol.encode_hello()[:5] + b"\x40" + protocol.encode_hello()[6:],
    "name-not-utf8": protocol.encode_hello() + raw_header(b"\xff\xfe.jpg", b"", 0),
}
EXPECTED_STATUS = {
    "garbage": Status.BAD_REQUEST,
    "bad-magic": Status.BAD_REQUEST,
    "oversized-name-length": Status.BAD_REQUEST,
    "oversized-dest-length": Status.BAD_REQUEST,
    "oversized-size": Status.TOO_LARGE,
    "unknown-type": Status.BAD_REQUEST,
    "wrong-version": Status.VERSION_UNSUPPORTED,
    "unknown-hello-flags": Status.BAD_REQUEST,
    "name-not-utf8": Status.BAD_REQUEST,
}


def test_malformed_input_does_not_kill_the_server(receivers, frames: Path, out: Path) -> None:
    receiver = receivers(out, "--workers", "2")
    workers = receiver.workers()
    assert len(workers) == 2
    for label, data in BAD_INPUTS.items():
        with Peer(receiver.port) as sock:
            sock.send(data)
            sock.sock.shutdown(socket.SHUT_WR)  # then EOF: truncated input ends here
            replies = sock.until_closed()
        statuses = [r.status for r in replies if r.status != Status.OK]
        if label in EXPECTED_STATUS:
            assert statuses == [EXPECTED_STATUS[label]], label
        else:
            assert statuses == [], label
        assert receiver.process.poll() is None, label
    assert receiver.workers() == workers  # no worker died on any of it
    assert list(out.iterdir()) == []
    assert_still_serving(receiver.port, frames, out)
    assert temps_under(out) == []


def test_malformed_input_leaves_connection_closed_not_hanging(receivers, out: Path) -> None:
    receiver = receivers(out)
    with Peer(receiver.port) as sock:
        sock.send(b"XMAC" + bytes(12))
        reply = sock.reply()
        assert reply is not None and reply.status == Status.BAD_REQUEST
        assert "magic" in reply.message
        assert sock.sock.recv(1) == b""  # the server closed it; we did not have to


def test_truncated_body_leaves_nothing(receivers, frames: Path, out: Path) -> None:
    receiver = receivers(out, "--verbose")
    data = b"\xab" * (3 * 1024 * 1024)
    message = file_message(1, "cut.jpg", data)
    with hello(receiver.port) as sock:
        sock.send(message[: len(message) - 1024 * 1024])
        # The temp exists while the body is being received...
        wait_until(lambda: temps_under(out), 10, "the receiver to start the file")
    # ...and is gone once the connection closed mid-body; no final file either.
    wait_until(lambda: not temps_under(out), 10, "the temp of the cut file to be removed")
    assert list(out.iterdir()) == []
    assert_still_serving(receiver.port, frames, out)
    assert "cut.jpg" not in tree_hashes(out)


def test_checksum_mismatch_is_refused_and_connection_stays_usable(receivers, out: Path) -> None:
    receiver = receivers(out)
    with hello(receiver.port) as sock:
        good = file_message(1, "bad.jpg", b"original bytes")
        tampered = good[: -len(b"original bytes")] + b"tampered bytes"
        sock.send(tampered + file_message(2, "good.jpg", b"fine"))
        first, second = sock.reply(), sock.reply()
    assert first is not None and (first.seq, first.status) == (1, Status.CHECKSUM_MISMATCH)
    assert second is not None and (second.seq, second.status) == (2, Status.OK)
    assert tree_hashes(out) == {"good.jpg": tree_hashes_of_bytes(b"fine")}


def tree_hashes_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("name", "dest"),
    [
        ("../../x", ""),
        ("x", "../../x"),
        ("/etc/x", ""),
        ("x", "/etc/x"),
        ("x", "/etc"),
        ("a/../../x", ""),
        ("..", ""),
        ("x", "ok/../../.."),
        (".hidden", ""),
    ],
)
def test_traversal_is_refused_and_nothing_written_outside(
    receivers, tmp_path: Path, frames: Path, name: str, dest: str
) -> None:
    out = tmp_path / "root" / "out"
    receiver = receivers(out, "--use-dest-paths")
    outside_before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    payload = b"attack"
    with hello(receiver.port) as sock:
        # Build the header by hand: FileHeader.encode would happily encode these too.
        hasher = new_hasher()
        hasher.update(payload)
        header = FileHeader(1, name, dest, len(payload), hasher.digest()).encode()
        sock.send(header + payload + file_message(2, "after.jpg", b"after", "ok"))
        refused, after = sock.reply(), sock.reply()
    assert refused is not None and refused.status == Status.UNSAFE_PATH, refused
    assert after is not None and after.status == Status.OK  # same connection, still in step
    outside_after = sorted(
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_relative_to(out)
    )
    assert outside_after == [p for p in outside_before if not (tmp_path / p).is_relative_to(out)]
    assert tree_hashes(out) == {"ok/after.jpg": tree_hashes_of_bytes(b"after")}
    assert not Path("/etc/x").exists()
    assert_still_serving(receiver.port, frames, out, "ok")


def test_planted_symlink_in_out_dir_is_refused(receivers, tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "ball_1").symlink_to(outside)
    receiver = receivers(out, "--use-dest-paths")
    with hello(receiver.port) as sock:
        sock.send(file_message(1, "f.jpg", b"x", "ball_1/camera01"))
        reply = sock.reply()
    assert reply is not None and reply.status == Status.UNSAFE_PATH
    assert list(outside.iterdir()) == []


def test_count_first_sender_once_works(receivers, frames: Path, out: Path) -> None:
    receiver = receivers(out, "--expect-count-first")
    result = run_sender(frames, receiver.port, "--once", "--conns", "2")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(frames)
    assert "announced" not in receiver.log()


def test_count_first_refuses_a_connection_without_count(receivers, frames: Path, out: Path) -> None:
    receiver = receivers(out, "--expect-count-first")
    with Peer(receiver.port) as sock:
        sock.send(protocol.encode_hello(None))
        reply = sock.reply()
        assert reply is not None and reply.status == Status.COUNT_REQUIRED
        assert sock.until_closed() == []
    # A continuous sender cannot announce a count: refused with a clear failure.
    result = run_sender(frames, receiver.port, "--max-files", "3", "--json-stats", timeout=60)
    assert result.returncode == 1
    assert "requires a file count first" in result.stderr
    assert result.stats["ok"] is False and "count" in result.stats["error"]
    assert result.stats["files"] == 0
    assert list(out.iterdir()) == []


def test_count_first_reports_count_mismatch(receivers, out: Path) -> None:
    receiver = receivers(out, "--expect-count-first")
    with hello(receiver.port, count=3) as sock:
        sock.send(file_message(1, "only.jpg", b"one of three"))
        landed = sock.reply()
        sock.send(protocol.encode_end(2))
        end = sock.reply()
    assert landed is not None and landed.status == Status.OK
    assert end is not None and (end.seq, end.status) == (2, Status.COUNT_MISMATCH)
    assert (out / "only.jpg").read_bytes() == b"one of three"
    assert "announced 3" in receiver.log()


def test_end_with_matching_count_is_ok(receivers, out: Path) -> None:
    receiver = receivers(out, "--expect-count-first")
    with hello(receiver.port, count=2) as sock:
        sock.send(file_message(1, "a.jpg", b"a") + file_message(2, "b.jpg", b"b"))
        replies = [sock.reply(), sock.reply()]
        sock.send(protocol.encode_end(3))
        end = sock.reply()
    assert [r.status for r in replies if r] == [Status.OK, Status.OK]
    assert end is not None and (end.seq, end.status) == (3, Status.OK)


def test_file_over_max_file_size_is_refused_as_too_large(receivers, src: Path, out: Path) -> None:
    make_frames(src, 3, size=5000)
    make_frames(src, 1, size=20_000, first=4)
    make_frames(src, 2, size=5000, first=5)
    receiver = receivers(out, "--max-file-size", "10000")
    result = run_sender(src, receiver.port, "--once", "--conns", "1", "--json-stats")
    assert result.returncode == 1
    stats = result.stats
    assert (stats["files"], stats["failed"]) == (5, 1)
    [skipped] = stats["skipped"]
    assert skipped["name"] == "frame_camera01_000000004.jpg"
    assert "limit" in skipped["reason"]
    assert sorted(tree_hashes(out)) == sorted(n for n in tree_hashes(src) if "004" not in n)
    assert temps_under(out) == []


def test_file_far_over_max_file_size_fails_at_once_with_the_reason(
    receivers, src: Path, out: Path
) -> None:
    """The receiver refuses at the header and stops reading long before the body is sent:
    the sender must see the refusal (not a broken pipe) and neither retry nor wait."""
    make_frames(src, 2, size=5000)
    big = src / "frame_camera01_000000003.jpg"
    with big.open("wb") as f:  # sparse: 300 MiB of zeros without writing them
        f.truncate(300 << 20)
    os.utime(big, (big.stat().st_atime - 5, big.stat().st_mtime - 5))  # an old frame
    make_frames(src, 2, size=5000, first=4)
    receiver = receivers(out, "--max-file-size", "1000000")
    result = run_sender(src, receiver.port, "--once", "--conns", "1", "--json-stats")
    assert result.returncode == 1, result.stderr
    stats = result.stats
    assert (stats["files"], stats["failed"], stats["retries"]) == (4, 1, 0), result.stderr
    [skipped] = stats["skipped"]
    assert skipped["name"] == big.name
    assert "over this receiver's limit" in skipped["reason"]
    assert sorted(tree_hashes(out)) == sorted(n for n in tree_hashes(src) if "003" not in n)
    assert temps_under(out) == []


@pytest.fixture
def immutable_folder(out: Path) -> Iterator[Path]:
    """`out/ev`, in which nothing can be created (chattr +i binds root too)."""
    folder = out / "ev"
    folder.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_files_resent_on_one_connection_count_once_against_its_announcement(
    receivers, src: Path, out: Path, immutable_folder: Path
) -> None:
    # Every attempt is refused with a retryable error, and the sender resends each file on
    # the same connection: the stream is whole, so END must not report a count mismatch.
    make_frames(src, 3, size=5000)
    receiver = receivers(out, "--use-dest-paths")
    result = run_sender(
        src, receiver.port, "--once", "--conns", "1", "--retries", "2", "--dest-path", "ev",
        "--json-stats",
    )  # fmt: skip
    assert result.returncode == 1
    assert (result.stats["files"], result.stats["failed"]) == (0, 3)
    assert list(immutable_folder.iterdir()) == []
    assert "cannot create" in receiver.log()
    assert "announced" not in receiver.log()
    assert "receiver at end" not in result.stderr


def test_receiver_start_removes_temps_of_dead_writers_only(
    receivers, tmp_path: Path, frames: Path
) -> None:
    out = tmp_path / "out"
    (out / "ball_1").mkdir(parents=True)
    dead = out / "ball_1" / ".camxfer-tmp-999999999-7"  # no such pid: a crashed receiver's
    alive = out / f".camxfer-tmp-{os.getpid()}-1"  # a live writer sharing the folder
    dead.write_bytes(b"half a frame")
    alive.write_bytes(b"in progress")
    receiver = receivers(out)
    assert not dead.exists()
    assert alive.exists()
    assert "removed 1 temporary files" in receiver.log()
    alive.unlink()
    assert_still_serving(receiver.port, frames, out)


def test_overwrite_replaces_a_different_file(receivers, tmp_path: Path, out: Path) -> None:
    first_src, second_src = tmp_path / "a", tmp_path / "b"
    make_frames(first_src, 2)
    make_frames(second_src, 2)
    receiver = receivers(out, "--overwrite")
    assert run_sender(first_src, receiver.port, "--once").returncode == 0
    result = run_sender(second_src, receiver.port, "--once", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(second_src)
    assert temps_under(out) == []


@pytest.mark.parametrize("reuseport", [False, True], ids=["shared-socket", "reuseport"])
def test_second_receiver_on_a_busy_port_refuses_to_start(
    receivers, tmp_path: Path, reuseport: bool
) -> None:
    args = ["--workers", "2", *(["--reuseport"] if reuseport else [])]
    first = receivers(tmp_path / "first", *args)
    second = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "camxfer",
            "recv",
            "--listen-ip",
            "127.0.0.1",
            "--port",
            str(first.port),
            "--out-dir",
            str(tmp_path / "second"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = second.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        for pid in child_pids(second.pid):
            os.kill(pid, signal.SIGKILL)
        second.kill()
        second.communicate()
        pytest.fail("a second receiver started on a port already in use")
    assert second.returncode == 1
    assert "cannot listen" in output and "in use" in output
    assert first.process.poll() is None


@pytest.mark.parametrize("dest", ["", "ball_1/camera01"], ids=["out-dir", "dest-path"])
def test_an_out_dir_removed_under_a_running_receiver_is_landed_in_again(
    receivers, tmp_path: Path, dest: str
) -> None:
    """The out-dir deleted (and made again, or not) while the receiver runs: each worker held a
    descriptor of the deleted folder, so every file and manifest after it was refused
    ('No such file or directory') until the receiver was restarted."""
    out = tmp_path / "landing" / "out"
    receiver = receivers(out, "--workers", "2", "--use-dest-paths")
    first, second = tmp_path / "a", tmp_path / "b"
    make_frames(first, 3)
    make_frames(second, 3, first=10)
    dest_args = ["--dest-path", dest] if dest else []
    assert run_sender(first, receiver.port, "--once", *dest_args).returncode == 0
    shutil.rmtree(tmp_path / "landing")
    if dest:  # the parent made again by hand; the receiver makes the out-dir itself
        (tmp_path / "landing").mkdir()
    # Both workers take a connection, so each meets the deleted folder.
    result = run_sender(second, receiver.port, "--once", "--conns", "4", *dest_args)
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out / dest) == tree_hashes(second)
    assert temps_under(out) == []


def test_a_fifo_under_a_frames_final_name_is_refused_not_waited_on(
    receivers, src: Path, out: Path
) -> None:
    """A FIFO planted where a frame lands: the duplicate check opened it to compare contents
    and blocked for ever waiting for a writer, so the session never answered; every resend
    left another session hung, holding its connection slot and its batch's unnamed files."""
    frames = make_frames(src, 3)
    os.mkfifo(out / frames[1].name)
    receiver = receivers(out, "--workers", "1")
    result = run_sender(
        src, receiver.port, "--once", "--retries", "0", "--ack-timeout", "10", "--json-stats"
    )
    assert result.returncode == 1
    assert [s["name"] for s in result.stats["skipped"]] == [frames[1].name]
    assert "different content" in result.stats["skipped"][0]["reason"]
    for frame in (frames[0], frames[2]):
        assert (out / frame.name).read_bytes() == frame.read_bytes()
    assert temps_under(out) == []
