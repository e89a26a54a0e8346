"""The receiver's connection reader (`camxfer.recv.inbox`) on real socket pairs: every piece
comes out exactly as sent however the sender splits its writes, bytes past a message stay
buffered for the next, a stalled or closed peer ends the read, and a steady stream costs no
timeout changes."""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from camxfer.recv.inbox import ConnectionClosed, Inbox

BUFFER = 64 << 10  # small, so that messages cross its end and force compaction


class CountingSocket(socket.socket):
    """A real socket that counts its setsockopt calls (each one a system call)."""

    setsockopt_calls = 0

    def setsockopt(self, *args: object) -> None:  # type: ignore[override]
        CountingSocket.setsockopt_calls += 1
        super().setsockopt(*args)  # type: ignore[arg-type]


def socket_pair() -> tuple[socket.socket, socket.socket]:
    left, right = socket.socketpair()
    reader = CountingSocket(left.family, left.type, left.proto, fileno=left.detach())
    return reader, right


@contextlib.contextmanager
def streaming(send: Callable[[socket.socket], None], buffer: int = BUFFER) -> Iterator[Inbox]:
    """An Inbox on one end of a socket pair while a thread runs `send` on the other."""
    reader, writer = socket_pair()
    thread = threading.Thread(target=send, args=(writer,))
    thread.start()
    try:
        yield Inbox(reader, bytearray(buffer))
    finally:
        thread.join()
        reader.close()
        writer.close()


def messages(rng: random.Random, count: int) -> list[tuple[bytes, bytes]]:
    """(header, body) pairs: a 16-byte header saying the body's length, bodies of 0-200 KiB."""
    out = []
    for _ in range(count):
        body = rng.randbytes(rng.choice([0, 1, 100, 5000, BUFFER - 1, BUFFER + 7, 200_000]))
        out.append((len(body).to_bytes(8, "big") + rng.randbytes(8), body))
    return out


def send_split(sock: socket.socket, data: bytes, rng: random.Random) -> None:
    """Send `data` in random pieces, now and then pausing, so reads see every split."""
    at = 0
    while at < len(data):
        step = rng.choice([1, 3, 16, 17, 1000, 70_000, 300_000])
        sock.sendall(data[at : at + step])
        at += step
        if rng.random() < 0.05:
            time.sleep(0.001)
    sock.shutdown(socket.SHUT_WR)


def read_body(inbox: Inbox, size: int, stage: memoryview | None) -> bytes:
    """A body in `chunks`; or, with a `stage`, as the session takes one landing with O_DIRECT:
    what is buffered through `take`, the rest received straight into the stage."""
    if stage is None:
        return b"".join(bytes(chunk) for chunk in inbox.chunks(size))
    body = bytearray()
    while len(body) < size:
        if inbox.buffered:
            body += inbox.take(size - len(body))
        else:
            body += stage[: inbox.receive_into(stage[: size - len(body)])]
    return bytes(body)


def read_messages(
    inbox: Inbox, count: int, stage: memoryview | None = None
) -> list[tuple[bytes, bytes]]:
    """Read as the receiver session does: wait, header under a deadline, then the body."""
    got = []
    for _ in range(count):
        inbox.wait_for_data(10.0)
        assert inbox.buffered <= inbox.fill_limit
        inbox.start_deadline(10.0)
        header = inbox.read_exact(16)
        inbox.end_deadline(10.0)
        got.append((header, read_body(inbox, int.from_bytes(header[:8], "big"), stage)))
    return got


@pytest.mark.parametrize("into_stage", [False, True], ids=["chunks", "into-stage"])
@pytest.mark.parametrize("seed", range(6))
def test_every_piece_comes_out_as_sent_however_the_writes_split(
    seed: int, into_stage: bool
) -> None:
    rng = random.Random(seed)
    sent = messages(rng, 40)
    data = b"".join(header + body for header, body in sent)
    stage = memoryview(bytearray(70_000)) if into_stage else None
    with streaming(lambda writer: send_split(writer, data, rng)) as inbox:
        if into_stage:
            inbox.fill_limit = 4096  # a header's receive takes little of the body after it
        assert read_messages(inbox, len(sent), stage) == sent
        assert inbox.buffered == 0
        with pytest.raises(ConnectionClosed, match="closed by the sender"):
            inbox.wait_for_data(10.0)


def test_a_piece_larger_than_the_buffer_is_gathered_whole() -> None:
    big = random.Random(1).randbytes(5 * BUFFER + 3)
    with streaming(lambda writer: writer.sendall(b"head" + big + b"tail")) as inbox:
        inbox.set_timeout(10.0)
        assert inbox.read_exact(4) == b"head"
        assert inbox.read_exact(len(big)) == big
        assert inbox.read_exact(4) == b"tail"


def test_a_header_not_whole_by_its_deadline_ends_the_read() -> None:
    reader, writer = socket_pair()
    try:
        inbox = Inbox(reader, bytearray(BUFFER))
        inbox.set_timeout(30.0)
        writer.sendall(b"12345")  # 5 of 16 bytes, then nothing
        inbox.wait_for_data(30.0)
        inbox.start_deadline(0.3)
        began = time.monotonic()
        with pytest.raises(ConnectionClosed):
            inbox.read_exact(16)
        assert time.monotonic() - began < 10  # the 0.3 s deadline, not the 30 s timeout
        assert inbox.deadline_passed()
    finally:
        reader.close()
        writer.close()


def test_a_steady_stream_sets_no_timeouts_per_message() -> None:
    rng = random.Random(7)
    sent = messages(rng, 200)
    data = b"".join(header + body for header, body in sent)
    CountingSocket.setsockopt_calls = 0
    with streaming(lambda writer: writer.sendall(data), buffer=1 << 20) as inbox:
        assert read_messages(inbox, len(sent)) == sent
        # Two for the first timeout (receive and send). After that, a message whose header
        # is not all buffered yet costs two (its deadline, then the body's timeout), one with
        # its header buffered costs none. Setting the timeout before each piece, as before,
        # cost at least 8 per message.
        assert CountingSocket.setsockopt_calls < 20


def test_a_body_that_ends_at_the_buffers_end_is_not_taken_for_a_close() -> None:
    # The first message fills the buffer exactly; the next arrives a moment later. Waiting for
    # it once read a zero-length receive into the full buffer as the peer's close.
    first = (BUFFER - 16).to_bytes(8, "big") + bytes(8) + random.Random(3).randbytes(BUFFER - 16)
    second = (5).to_bytes(8, "big") + bytes(8) + b"later"

    def send(writer: socket.socket) -> None:
        writer.sendall(first)
        time.sleep(0.2)
        writer.sendall(second)
        writer.shutdown(socket.SHUT_WR)

    with streaming(send) as inbox:
        inbox.set_timeout(10.0)
        time.sleep(0.1)  # the whole first message is in the socket: one receive takes it all
        assert read_messages(inbox, 2) == [(first[:16], first[16:]), (second[:16], b"later")]


def test_asking_without_waiting_takes_what_has_come_and_never_blocks() -> None:
    reader, writer = socket_pair()
    try:
        inbox = Inbox(reader, bytearray(BUFFER))
        inbox.set_timeout(30.0)
        began = time.monotonic()
        assert not inbox.fill_nowait()  # nothing sent yet: an answer at once, not a wait
        assert time.monotonic() - began < 5
        writer.sendall(b"header+body")
        wait_until_readable(reader)
        assert inbox.fill_nowait()
        assert inbox.read_exact(11) == b"header+body"
        writer.close()
        wait_until_readable(reader)
        assert not inbox.fill_nowait()  # closed: left for the waiting receive to say
        with pytest.raises(ConnectionClosed, match="closed by the sender"):
            inbox.wait_for_data(1.0)
    finally:
        reader.close()
        writer.close()


def wait_until_readable(sock: socket.socket) -> None:
    assert select.select([sock], [], [], 10)[0], "nothing arrived"


def test_headers_asked_for_without_waiting_set_no_timeouts_per_message() -> None:
    # As the session reads files landing with O_DIRECT: each body received exactly into the
    # stage, so each next header needs a receive of its own, asked for first without waiting.
    # Waiting for each one instead (select, then the idle timeout for the wait and the I/O
    # timeout set back after it) cost two setsockopt calls per message.
    rng = random.Random(8)
    sent = messages(rng, 200)
    data = b"".join(header + body for header, body in sent)
    stage = memoryview(bytearray(70_000))
    CountingSocket.setsockopt_calls = 0
    with streaming(lambda writer: writer.sendall(data), buffer=1 << 20) as inbox:
        inbox.fill_limit = 4096
        got = []
        for _ in sent:
            inbox.fill_nowait()
            inbox.wait_for_data(600.0)  # the session's idle timeout
            header = inbox.read_exact(16)
            inbox.end_deadline(30.0)  # and its I/O timeout
            got.append((header, read_body(inbox, int.from_bytes(header[:8], "big"), stage)))
        assert got == sent
        assert CountingSocket.setsockopt_calls < 60
