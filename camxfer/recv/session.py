"""One sender connection on the receiver: speak the protocol, land each file, reply in order.

The session never lets one bad file end the connection when it can stay in step with the
sender: a rejected or failed file's body is still read (and discarded) and answered with an
error reply. Only bytes that break the framing itself (bad magic, bad lengths, EOF mid-file,
a stall past the deadline) close the connection. Nothing this module does can write outside
the landing root: every write goes through `landing`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from camxfer import protocol
from camxfer.buffers import BufferPool
from camxfer.errors import ProtocolError, UnsafePathError
from camxfer.protocol import FixedHeader, MessageType, Reply, Status
from camxfer.recv.landing import (
    ChecksumMismatch,
    ExistsDifferent,
    FileLanding,
    LandingRoot,
    resolve_destination,
)
from camxfer.sockets import set_io_timeout

log = logging.getLogger("camxfer.recv")

BUFFER_BYTES = 1 << 20  # one reused receive buffer per connection
# Given back when the connection ends, for the next one (camxfer.buffers).
RECEIVE_BUFFERS = BufferPool(BUFFER_BYTES, keep=32)
MAX_BATCH = 32  # files landed before their folder fsync and acks are forced out
# After an error reply: how long and how much input to discard before closing (see _linger).
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 << 20
# A body arriving slower than this, measured over each --io-timeout, is given up on.
MIN_BODY_BYTES_PER_S = 1024


@dataclass(frozen=True)
class ReceiverSettings:
    out_dir: Path
    use_dest_paths: bool = False
    expect_count_first: bool = False
    overwrite: bool = False
    max_file_size: int = protocol.MAX_FILE_SIZE_DEFAULT
    idle_timeout: float = 600.0  # seconds a connection may sit between messages
    io_timeout: float = 30.0  # seconds a started message may stall before we give up on it
    verbose: bool = False


@dataclass
class SessionCounters:
    files: int = 0
    bytes: int = 0
    duplicates: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, files: int = 0, nbytes: int = 0, duplicates: int = 0, errors: int = 0) -> None:
        with self.lock:
            self.files += files
            self.bytes += nbytes
            self.duplicates += duplicates
            self.errors += errors


class ConnectionClosed(Exception):
    """The peer closed or stalled; the session ends."""


class Session:
    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        root: LandingRoot,
        settings: ReceiverSettings,
        counters: SessionCounters,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.root = root
        self.settings = settings
        self.counters = counters
        self.busy = False  # inside a message: a graceful stop lets it finish
        self.stopping = False  # set on a graceful stop: finish the current file, take no more
        self._buffer = RECEIVE_BUFFERS.take()
        self._view = memoryview(self._buffer)
        self.announced: int | None = None
        self.received = 0
        self._timeout: float | None = None
        self._pending: list[tuple[Reply, int | None]] = []  # replies waiting for a flush
        # The handshake, and each message's header and names, must be whole by this time.
        self._deadline: float | None = None

    # --- reading -----------------------------------------------------------------------------
    def _set_timeout(self, seconds: float) -> None:
        if seconds != self._timeout:
            set_io_timeout(self.sock, seconds)
            self._timeout = seconds

    def _read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self._recv(min(n - len(out), BUFFER_BYTES))
            out += self._view[:chunk]
            if len(out) < n:
                self._check_deadline()
        return bytes(out)

    def _start_deadline(self) -> None:
        self._deadline = time.monotonic() + self.settings.io_timeout

    def _check_deadline(self) -> None:
        """A socket timeout only bounds each wait, so a peer sending a byte a second (slow
        loris) would never hit it: a handshake or a message header must also be whole within
        --io-timeout of its first byte (as Apache's mod_reqtimeout does for headers)."""
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise ConnectionClosed(
                f"handshake or message header not complete within {self.settings.io_timeout:g} s"
            )

    def _recv(self, n: int) -> int:
        try:
            got = self.sock.recv_into(self._view[:n], n)
        except (TimeoutError, BlockingIOError) as exc:
            raise ConnectionClosed("stalled past the deadline") from exc
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc
        if got == 0:
            raise ConnectionClosed("closed by the sender")
        return got

    def _reply(self, reply: Reply) -> None:
        try:
            self.sock.sendall(reply.encode())
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc

    # --- protocol ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self._handshake():
                self._serve_messages()
        except ConnectionClosed as exc:
            if self.announced is not None and self.received != self.announced:
                log.warning(
                    "%s: connection ended after %d of %d announced files (%s)",
                    self.peer,
                    self.received,
                    self.announced,
                    exc,
                )
            else:
                log.debug("%s: connection ended (%s)", self.peer, exc)
        except ProtocolError as exc:
            log.warning("%s: protocol error, closing: %s", self.peer, exc)
            self.counters.add(errors=1)
            with contextlib.suppress(ConnectionClosed):
                self._reply(Reply(0, Status.BAD_REQUEST, str(exc)))
            self._linger()
        finally:
            for _reply, fd in self._pending:  # never acknowledged: the sender resends them
                if fd is not None:
                    os.close(fd)
            self.sock.close()
            RECEIVE_BUFFERS.give(self._buffer)

    def _linger(self) -> None:
        """Half-close after an error reply and discard what the peer still sends, briefly.

        Closing a socket with unread input makes Linux send a RST, and a RST makes the
        peer's kernel drop data it has not read yet, which would include our error reply
        (RFC 1122 4.2.2.13; nginx "lingering_close" exists for the same reason).
        """
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                set_io_timeout(self.sock, max(left, 0.001))
                got = self.sock.recv_into(self._view, BUFFER_BYTES)
                if not got:
                    break
                drained += got

    def _handshake(self) -> bool:
        self._set_timeout(self.settings.io_timeout)
        self._start_deadline()
        hello = protocol.decode_hello(self._read_exact(protocol.HELLO_SIZE))
        if hello.version != protocol.VERSION:
            self._reply(
                Reply(
                    0,
                    Status.VERSION_UNSUPPORTED,
                    f"protocol version {hello.version} unsupported; "
                    f"this receiver speaks {protocol.VERSION}",
                )
            )
            self._linger()
            return False
        if self.settings.expect_count_first and hello.count is None:
            log.warning("%s: connection did not announce a file count; refused", self.peer)
            self._reply(
                Reply(
                    0,
                    Status.COUNT_REQUIRED,
                    "this receiver requires a file count first (--expect-count-first); "
                    "send with --once",
                )
            )
            self._linger()
            return False
        self.announced = hello.count
        self._reply(Reply(0, Status.OK, f"camxfer/{protocol.VERSION}"))
        log.debug(
            "%s: connected%s",
            self.peer,
            f", announcing {hello.count} files" if hello.count is not None else "",
        )
        return True

    def _data_waiting(self) -> bool:
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def _flush(self) -> None:
        """Fsync the folders of the files landed since the last flush, once each, then ack."""
        if not self._pending:
            return
        synced: dict[tuple[int, int], bool] = {}
        out = []
        for reply, fd in self._pending:
            if fd is not None:
                try:
                    st = os.fstat(fd)
                    key = (st.st_dev, st.st_ino)
                    if key not in synced:
                        try:
                            os.fsync(fd)
                            synced[key] = True
                        except OSError:
                            synced[key] = False
                finally:
                    os.close(fd)
                if not synced[key]:
                    reply = Reply(reply.seq, Status.IO_ERROR, "cannot make the folder durable")
            out.append(reply.encode())
        self._pending.clear()
        try:
            self.sock.sendall(b"".join(out))
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc

    def _serve_messages(self) -> None:
        while True:
            # Group commit: while the sender's next file is already here, land it before
            # acknowledging; one folder fsync then covers every link since the last flush.
            if self._pending and (len(self._pending) >= MAX_BATCH or not self._data_waiting()):
                self._flush()
            # Landed but unacknowledged files keep the session busy: a graceful stop must let
            # it send their acks (after the folder fsync), or the sender would resend them.
            self.busy = bool(self._pending)
            if self.stopping:
                self._flush()
                # The sender learns from the closed connection that unacknowledged files
                # must be resent elsewhere or later; half-close first so it reads the
                # replies already sent rather than a RST.
                self._linger()
                return
            self._set_timeout(self.settings.idle_timeout)
            first = self._recv(1)
            self.busy = True
            self._start_deadline()
            self._set_timeout(self.settings.io_timeout)
            head = bytes(self._view[:first]) + self._read_exact(protocol.FILE_HEADER_SIZE - first)
            # Any size is well-formed here; one over this receiver's limit is answered below
            # with TOO_LARGE for that file, so the sender fails it instead of resending it.
            fixed = protocol.decode_fixed(head, max_file_size=protocol.MAX_SIZE_FIELD)
            if fixed.type == MessageType.END:
                self._finish(fixed.seq)
                return
            if fixed.size > self.settings.max_file_size:
                self._refuse_too_large(fixed)
                return
            self.received += 1
            syncs: list[int] = []
            reply = self._receive_file(fixed, syncs)
            self._pending.append((reply, syncs[0] if syncs else None))

    def _refuse_too_large(self, fixed: FixedHeader) -> None:
        """Answer TOO_LARGE and close: draining gigabytes to stay in step is not worth it."""
        message = (
            f"file of {fixed.size} bytes is over this receiver's limit of "
            f"{self.settings.max_file_size} bytes (--max-file-size)"
        )
        self.counters.add(errors=1)
        log.warning("%s: refused: %s", self.peer, message)
        self._flush()
        self._reply(Reply(fixed.seq, Status.TOO_LARGE, message))
        self._linger()

    def _finish(self, seq: int) -> None:
        self._flush()
        if self.announced is not None and self.received != self.announced:
            log.warning(
                "%s: announced %d files but sent %d", self.peer, self.announced, self.received
            )
            self._reply(
                Reply(
                    seq,
                    Status.COUNT_MISMATCH,
                    f"announced {self.announced} files, sent {self.received}",
                )
            )
        else:
            self._reply(Reply(seq, Status.OK, f"{self.received} files"))

    def _receive_file(self, fixed: FixedHeader, dir_syncs: list[int]) -> Reply:
        name, dest = protocol.decode_names(fixed, self._read_exact(fixed.variable_len))
        try:
            if dest and not self.settings.use_dest_paths:
                self._drain(fixed.size)
                return self._refuse(
                    fixed,
                    name,
                    Status.DEST_PATHS_DISABLED,
                    "this receiver does not take destination paths "
                    "(start it with --use-dest-paths)",
                )
            folders, final = resolve_destination(self.settings.out_dir, dest, name)
            landing = FileLanding(self.root, folders, final, fixed.size, fixed.checksum)
        except UnsafePathError as exc:
            self._drain(fixed.size)
            return self._refuse(fixed, name, Status.UNSAFE_PATH, str(exc))
        except OSError as exc:
            self._drain(fixed.size)
            return self._refuse(
                fixed, name, _status_for(exc), f"cannot create {name}: {exc.strerror}"
            )
        try:
            self._receive_body(landing, fixed.size)
        except BaseException:
            landing.abort()
            raise
        try:
            landed = landing.commit(dir_syncs)
        except ChecksumMismatch as exc:
            return self._refuse(fixed, name, Status.CHECKSUM_MISMATCH, str(exc))
        except ExistsDifferent as exc:
            return self._refuse(fixed, name, Status.EXISTS_DIFFERENT, str(exc))
        except UnsafePathError as exc:
            return self._refuse(fixed, name, Status.UNSAFE_PATH, str(exc))
        except OSError as exc:
            return self._refuse(
                fixed, name, _status_for(exc), f"cannot land {name}: {exc.strerror}"
            )
        if landed.status == "duplicate":
            self.counters.add(duplicates=1)
            log.debug("%s: %s already landed, identical", self.peer, landed.path)
            return Reply(fixed.seq, Status.DUPLICATE)
        self.counters.add(files=1, nbytes=fixed.size)
        log.debug("%s: landed %s (%d bytes)", self.peer, landed.path, fixed.size)
        return Reply(fixed.seq, Status.OK)

    def _receive_body(self, landing: FileLanding, size: int) -> None:
        remaining = size
        pace = _BodyPace(self.settings.io_timeout)
        while remaining:
            got = self._recv(min(remaining, BUFFER_BYTES))
            landing.write(self._view[:got])
            remaining -= got
            pace.add(got)

    def _drain(self, size: int) -> None:
        remaining = size
        pace = _BodyPace(self.settings.io_timeout)
        while remaining:
            got = self._recv(min(remaining, BUFFER_BYTES))
            remaining -= got
            pace.add(got)

    def _refuse(self, fixed: FixedHeader, name: str, status: Status, message: str) -> Reply:
        self.counters.add(errors=1)
        log.warning("%s: %s refused: %s", self.peer, name, message)
        return Reply(fixed.seq, status, message)


class _BodyPace:
    """A minimum body rate (Apache mod_reqtimeout's MinRate): the socket timeout only bounds
    each wait, so a client announcing a large file and sending a byte a second would hold
    the connection, its temporary and a --max-conns slot for as long as it liked."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.start = time.monotonic()
        self.bytes = 0

    def add(self, n: int) -> None:
        self.bytes += n
        now = time.monotonic()
        if now - self.start < self.window:
            return
        if self.bytes < MIN_BODY_BYTES_PER_S * (now - self.start):
            raise ConnectionClosed(
                f"file body slower than {MIN_BODY_BYTES_PER_S} bytes/s over {self.window:g} s"
            )
        self.start, self.bytes = now, 0


def _status_for(exc: OSError) -> Status:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Status.NO_SPACE
    return Status.IO_ERROR
