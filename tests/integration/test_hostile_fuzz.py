"""A stateful fuzzer (hypothesis) against a live receiver on loopback.

Each example is a random sequence of: valid files on a persistent connection, duplicates of
landed files, garbage on a fresh connection, files cut off mid-message and closed, headers
with oversized lengths, and reconnects. After every step what landed must equal what was
acknowledged (byte for byte, nothing else); at the end of each example no temporary is left
once the receiver is idle and the receiver still accepts and lands a file. Hypothesis shrinks
a failure to a minimal sequence of steps.

The number of steps run is printed (`-s`): the "fuzz cases" figure.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from camxfer import protocol
from camxfer.protocol import FileHeader, Reply, ReplyParser, Status, new_hasher
from tests.checker import TEMP_PREFIX, landed_files, sha256_bytes
from tests.conftest import Receiver

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 100
STEPS = 20
MAX_FILE_SIZE = 100_000


class Peer:
    """A raw protocol connection that reads replies one at a time."""

    def __init__(self, port: int, *, hello: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._parser = ReplyParser()
        self._pending: list[Reply] = []
        self.seq = itertools.count(1)
        if hello:
            self.sock.sendall(protocol.encode_hello())
            reply = self.reply()
            assert reply is not None and reply.status == Status.OK, reply

    def reply(self) -> Reply | None:
        while not self._pending:
            try:
                data = self.sock.recv(4096)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self._pending.extend(self._parser.feed(data))
        return self._pending.pop(0)

    def replies_until_closed(self) -> list[Reply]:
        replies = []
        while (reply := self.reply()) is not None:
            replies.append(reply)
        return replies

    def close(self) -> None:
        self.sock.close()


def file_message(seq: int, name: str, data: bytes, dest: str) -> bytes:
    hasher = new_hasher()
    hasher.update(data)
    return FileHeader(seq, name, dest, len(data), hasher.digest()).encode() + data


def raw_header(name_len: int, dest_len: int, size: int) -> bytes:
    fixed = struct.pack(
        "!BBHHHQQ16s", protocol.MessageType.FILE, 0, name_len, dest_len, 0, 1, size, bytes(16)
    )
    return fixed + b"n" * min(name_len, 2000) + b"d" * min(dest_len, 2000)


STEP_COUNT = itertools.count()
EXAMPLE_COUNT = itertools.count()


def machine_for(receiver: Receiver) -> type[RuleBasedStateMachine]:
    class HostileClients(RuleBasedStateMachine):
        sent = Bundle("sent")

        def __init__(self) -> None:
            super().__init__()
            self.dest = f"ex{next(EXAMPLE_COUNT)}"
            self.folder = receiver.out_dir / self.dest
            self.acked: dict[str, str] = {}
            self.names = itertools.count()
            self.conn: Peer | None = None

        def _main(self) -> Peer:
            if self.conn is None:
                self.conn = Peer(receiver.port)
            return self.conn

        def _fresh_name(self) -> str:
            return f"f{next(self.names)}.bin"

        @rule(target=sent, data=st.binary(max_size=4000))
        def send_valid(self, data: bytes) -> str:
            next(STEP_COUNT)
            name = self._fresh_name()
            peer = self._main()
            peer.sock.sendall(file_message(next(peer.seq), name, data, self.dest))
            reply = peer.reply()
            assert reply is not None and reply.status == Status.OK, reply
            self.acked[name] = sha256_bytes(data)
            return name

        @rule(name=sent)
        def duplicate(self, name: str) -> None:
            next(STEP_COUNT)
            data = (self.folder / name).read_bytes()
            peer = self._main()
            peer.sock.sendall(file_message(next(peer.seq), name, data, self.dest))
            reply = peer.reply()
            assert reply is not None and reply.status == Status.DUPLICATE, reply

        @rule(garbage=st.binary(min_size=1, max_size=300), after_hello=st.booleans())
        def send_garbage(self, garbage: bytes, after_hello: bool) -> None:
            next(STEP_COUNT)
            peer = Peer(receiver.port, hello=after_hello)
            try:
                peer.sock.sendall(garbage)
                peer.sock.shutdown(socket.SHUT_WR)
                replies = peer.replies_until_closed()
            finally:
                peer.close()
            assert all(r.status != Status.OK for r in replies), replies

        @rule(data=st.binary(min_size=1, max_size=20_000), keep=st.floats(0.0, 0.999))
        def truncate_and_close(self, data: bytes, keep: float) -> None:
            next(STEP_COUNT)
            message = file_message(1, self._fresh_name(), data, self.dest)
            peer = Peer(receiver.port)
            try:
                peer.sock.sendall(message[: int(len(message) * keep)])
            finally:
                peer.close()

        @rule(which=st.sampled_from(["name", "dest", "size"]))
        def oversized_length(self, which: str) -> None:
            next(STEP_COUNT)
            header = {
                "name": raw_header(5000, 0, 10),
                "dest": raw_header(5, 5000, 10),
                "size": raw_header(5, 0, MAX_FILE_SIZE + 1),
            }[which]
            peer = Peer(receiver.port)
            try:
                peer.sock.sendall(header)
                replies = peer.replies_until_closed()
            finally:
                peer.close()
            expected = Status.TOO_LARGE if which == "size" else Status.BAD_REQUEST
            assert [r.status for r in replies] == [expected], replies

        @rule()
        def reconnect(self) -> None:
            next(STEP_COUNT)
            if self.conn is not None:
                self.conn.close()
                self.conn = None

        @invariant()
        def landed_equals_acked(self) -> None:
            finals = {
                name: digest
                for name, digest in landed_files(self.folder).items()
                if not name.startswith(TEMP_PREFIX)
            }
            assert finals == self.acked

        def teardown(self) -> None:
            if self.conn is not None:
                self.conn.close()
            # Idle: the receiver has noticed every cut connection and removed its temporary.
            deadline = time.monotonic() + 15
            while any(n.startswith(TEMP_PREFIX) for n in landed_files(self.folder)):
                assert time.monotonic() < deadline, "temporaries left while idle"
                time.sleep(0.05)
            # Still serving: a fresh connection lands a file.
            peer = Peer(receiver.port)
            try:
                peer.sock.sendall(file_message(1, "probe.bin", b"probe", self.dest))
                reply = peer.reply()
            finally:
                peer.close()
            assert reply is not None and reply.status == Status.OK, reply

    return HostileClients


@pytest.fixture
def fuzz_receiver(receivers, tmp_path: Path) -> Iterator[Receiver]:
    yield receivers(
        tmp_path / "out",
        "--use-dest-paths",
        "--workers",
        "2",
        "--io-timeout",
        "2",
        "--max-file-size",
        str(MAX_FILE_SIZE),
    )


def open_fds(pids: list[int]) -> int:
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def test_stateful_fuzz_of_a_live_receiver(fuzz_receiver: Receiver) -> None:
    workers = fuzz_receiver.workers()
    processes = [fuzz_receiver.pid, *workers]
    fds_before = open_fds(processes)
    run_state_machine_as_test(
        machine_for(fuzz_receiver),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
    assert fuzz_receiver.process.poll() is None
    assert fuzz_receiver.workers() == workers  # no worker died on any of it
    assert "Traceback" not in fuzz_receiver.log()
    # Nothing leaks a descriptor: refused, cut and aborted files all closed theirs.
    deadline = time.monotonic() + 15
    while open_fds(processes) > fds_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(processes) <= fds_before, (fds_before, open_fds(processes))
    steps = next(STEP_COUNT)
    print(
        f"\nstateful fuzz: {next(EXAMPLE_COUNT)} sequences, {steps} steps against a live receiver"
    )
