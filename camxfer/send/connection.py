"""One persistent TCP connection from a sender to a receiver.

It sends file after file without waiting for acknowledgements (headers are pipelined; the
receiver answers in order), and reads replies whenever they are there. A file's bytes go
with zero-copy `sendfile`; the header is sent with MSG_MORE so it rides in the same segment.
"""

from __future__ import annotations

import os
import select
import socket
from dataclasses import dataclass

from camxfer import protocol
from camxfer.errors import ProtocolError, TransferError
from camxfer.protocol import FileHeader, Reply, ReplyParser, Status
from camxfer.sockets import set_io_timeout


class ConnectionLost(Exception):
    """The link broke or the receiver stopped answering; unacknowledged files must be resent."""


class HandshakeRefused(TransferError):
    """The receiver refused the connection for a reason a retry cannot fix."""


@dataclass(frozen=True)
class ConnectionSettings:
    host: str
    port: int
    connect_timeout: float = 5.0
    io_timeout: float = 60.0
    sndbuf: int = 0
    rcvbuf: int = 0


class Connection:
    def __init__(self, settings: ConnectionSettings, announce_count: int | None = None) -> None:
        self.settings = settings
        self._parser = ReplyParser()
        self._next_seq = 1
        self._lost: str | None = None  # why the connection broke, once it has
        try:
            self.sock = socket.create_connection(
                (settings.host, settings.port), timeout=settings.connect_timeout
            )
        except OSError as exc:
            raise ConnectionLost(
                f"cannot connect to {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from exc
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Only when asked: a fixed buffer turns off Linux autotuning (PERF-NOTES).
            if settings.sndbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.sndbuf)
            if settings.rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings.rcvbuf)
            set_io_timeout(self.sock, settings.io_timeout)
            self._send(protocol.encode_hello(announce_count))
            reply = self.wait_reply()
        except BaseException:
            self.sock.close()
            raise
        if reply.status != Status.OK:
            self.sock.close()
            raise HandshakeRefused(
                f"receiver {settings.host}:{settings.port} refused: {reply.message}"
            )

    def _send(self, data: bytes, flags: int = 0) -> None:
        try:
            view = memoryview(data)
            while view:
                sent = self.sock.send(view, flags)
                view = view[sent:]
        except BlockingIOError:
            raise ConnectionLost("send stalled past the timeout") from None
        except OSError as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc

    def send_file(self, fd: int, name: str, dest: str, size: int, checksum: bytes) -> int:
        """Send one file from the open `fd`; returns the sequence number its reply will carry.

        If the file shrank under us, the body is padded to the announced size so the stream
        stays in step; the receiver's checksum check then refuses the file.
        """
        seq = self._next_seq
        self._next_seq += 1
        header = FileHeader(seq, name, dest, size, checksum).encode()
        self._send(header, socket.MSG_MORE if size else 0)
        sent = 0
        try:
            while sent < size:
                n = self._sendfile(fd, sent, size - sent)
                if n == 0:
                    break  # end of file before `size`: the file was truncated
                sent += n
        except OSError as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc
        if sent < size:
            self._send(bytes(size - sent))
        return seq

    def _sendfile(self, fd: int, offset: int, count: int) -> int:
        try:
            return os.sendfile(self.sock.fileno(), fd, offset, count)
        except BlockingIOError:
            # SO_SNDTIMEO passed with no room in the socket buffer: the link is stalled.
            raise ConnectionLost("send stalled past the timeout") from None

    def send_end(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        self._send(protocol.encode_end(seq))
        return seq

    def poll_replies(self) -> list[Reply]:
        """Replies already received, without waiting.

        Replies that arrived before the connection broke are returned first and the break is
        raised on the next call: a receiver that acks a file and then closes (it is stopping)
        has landed that file, and the sender must count it, not resend or fail it.
        """
        if self._lost is not None:
            raise ConnectionLost(self._lost)
        replies: list[Reply] = []
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return replies
            except OSError as exc:
                self._lost = f"receive failed: {exc}"
            else:
                if data:
                    try:
                        replies.extend(self._parser.feed(data))
                        continue
                    except ProtocolError as exc:
                        # Damaged or foreign bytes: this connection cannot be trusted any
                        # more, but a new one can; resend what it did not acknowledge.
                        self._lost = f"bad reply from the receiver: {exc}"
                else:
                    self._lost = "the receiver closed the connection"
            if replies:
                return replies
            raise ConnectionLost(self._lost)

    def wait_replies(self, timeout: float) -> list[Reply]:
        """Wait up to `timeout` for at least one reply."""
        replies = self.poll_replies()
        if replies:
            return replies
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            raise ConnectionLost(f"no reply from the receiver in {timeout:.0f} s")
        return self.poll_replies()

    def wait_reply(self) -> Reply:
        while True:
            replies = self.wait_replies(self.settings.io_timeout)
            if replies:
                return replies[0]

    def close(self) -> None:
        self.sock.close()
