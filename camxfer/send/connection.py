"""One persistent TCP connection from a sender to a receiver.

It sends file after file without waiting for acknowledgements (headers are pipelined; the
receiver answers in order), and reads replies whenever they are there. A file's bytes go
with zero-copy `sendfile`; the header is sent with MSG_MORE so it rides in the same segment.

A receiver answers a file before its body only to refuse it and close (a file over its
--max-file-size): it stops reading, so a sender still pushing gigabytes would meet a reset,
which also discards the refusal. So a long body goes out in pieces, and between them the
connection looks for that answer.
"""

from __future__ import annotations

import os
import select
import socket
from typing import TYPE_CHECKING, NamedTuple

from camxfer import auth, protocol
from camxfer.errors import ProtocolError, TransferError
from camxfer.protocol import FileHeader, Reply, ReplyParser, Status
from camxfer.sockets import connect, set_io_timeout
from camxfer.tls import is_tls_error

if TYPE_CHECKING:
    import ssl


# Between pieces of this size, a long body looks for the receiver's early refusal: one
# select() per piece, and the receiver drains more than this before it closes.
BODY_PIECE_BYTES = 8 << 20


class ConnectionLost(Exception):
    """The link broke or the receiver stopped answering; unacknowledged files must be resent."""


class Unsendable(Exception):
    """The protocol cannot carry this file (its name is not UTF-8 or too long); nothing of it
    was sent, and the connection is fine."""


class HandshakeRefused(TransferError):
    """The receiver refused the connection for a reason a retry cannot fix."""


class ConnectionSettings(NamedTuple):
    host: str
    port: int
    connect_timeout: float = 5.0
    io_timeout: float = 60.0
    sndbuf: int = 0
    rcvbuf: int = 0
    auth_key: bytes | None = None  # prove it; MAC every message
    tls: ssl.SSLContext | None = None  # speak TLS (camxfer.tls)

    def __repr__(self) -> str:
        return auth.repr_without_key(self)


class Connection:
    def __init__(self, settings: ConnectionSettings, announce_count: int | None = None) -> None:
        self.settings = settings
        self._parser = ReplyParser()
        self._next_seq = 1
        self._lost: str | None = None  # why the connection broke, once it has
        self._held: list[Reply] = []  # read while a body was being sent, not handed out yet
        self._send_mac: auth.MessageMac | None = None  # set by an authenticated handshake
        self._tls = settings.tls is not None
        try:
            self.sock = connect(settings.host, settings.port, settings.connect_timeout)
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
            if settings.tls is not None:
                self.sock = self._start_tls(settings.tls)
            if settings.auth_key is not None:
                reply = self._authenticate(settings.auth_key, announce_count)
            else:
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

    def _start_tls(self, context: ssl.SSLContext) -> ssl.SSLSocket:
        import ssl  # loaded already: the context came from camxfer.tls

        where = f"{self.settings.host}:{self.settings.port}"
        try:
            return context.wrap_socket(self.sock, server_hostname=self.settings.host)
        except ssl.SSLCertVerificationError as exc:
            raise HandshakeRefused(
                f"receiver {where}: its TLS certificate is not trusted ({exc.verify_message})"
            ) from None
        except ssl.SSLError as exc:
            raise HandshakeRefused(
                f"receiver {where}: TLS handshake failed ({exc.reason or exc}); "
                "does it run with --tls-cert, and do both ends trust each other's CA?"
            ) from None
        except OSError as exc:
            raise ConnectionLost(f"TLS handshake with {where} failed: {exc}") from exc

    def _authenticate(self, key: bytes, announce_count: int | None) -> Reply:
        """Prove the key, check the receiver's proof, then set up the MACs (docs/protocol.md)."""
        where = f"{self.settings.host}:{self.settings.port}"
        hello = protocol.encode_hello(announce_count, auth=True)
        client_nonce = auth.new_nonce()
        self._send(hello + client_nonce)
        first = self._recv_exact(1)
        if first[0] == protocol.MessageType.REPLY:  # refused before any challenge
            return self._read_plain_reply(first)[0]
        try:
            challenge = protocol.decode_challenge(
                first + self._recv_exact(protocol.CHALLENGE_SIZE - 1)
            )
        except ProtocolError as exc:
            raise HandshakeRefused(f"receiver {where}: {exc}") from None
        expected = auth.server_proof(key, hello, client_nonce, challenge.nonce)
        if not auth.proofs_equal(expected, challenge.proof):
            # Whoever answered does not hold our key: send it nothing more.
            raise HandshakeRefused(
                f"receiver {where} failed to prove it holds the shared key "
                "(a different key, or not the receiver we meant)"
            )
        proof = auth.client_proof(key, hello, client_nonce, challenge.nonce)
        self._send(protocol.encode_auth(proof))
        to_server, to_client = auth.session_macs(key, client_nonce, challenge.nonce)
        reply, raw = self._read_plain_reply(self._recv_exact(1))
        if reply.status == Status.AUTH_FAILED:
            return reply  # not authenticated, so not tagged
        # From here on every reply carries a MAC; the first one (this reply) included.
        self._send_mac = auth.MessageMac(to_server)
        receive_mac = auth.MessageMac(to_client)
        tag = self._recv_exact(protocol.MAC_SIZE)
        if not receive_mac.verify(raw, tag):
            # Both proofs held, so this is damage or tampering on the way: try again.
            raise ConnectionLost(f"receiver {where}: its reply failed authentication")
        self._parser = ReplyParser(receive_mac)
        return reply

    def _recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except (BlockingIOError, TimeoutError):
                raise ConnectionLost("no answer to the handshake in time") from None
            except OSError as exc:
                if is_tls_error(exc):
                    raise self._tls_refusal(exc) from None
                raise ConnectionLost(f"receive failed: {exc}") from exc
            if not chunk:
                raise ConnectionLost("the receiver closed the connection during the handshake")
            out += chunk
        return bytes(out)

    def _read_plain_reply(self, first: bytes) -> tuple[Reply, bytes]:
        """A reply read whole during the handshake, and its bytes as received."""
        head = first + self._recv_exact(protocol.REPLY_SIZE - len(first))
        try:
            seq, status, message_len = protocol.decode_reply_fixed(head)
        except ProtocolError as exc:
            raise HandshakeRefused(f"receiver: {exc}") from None
        text = self._recv_exact(message_len)
        return Reply(seq, status, text.decode("utf-8", errors="replace")), head + text

    def _send(self, data: bytes, flags: int = 0) -> None:
        try:
            view = memoryview(data)
            if self._tls:
                flags = 0  # an SSLSocket takes no send flags
            while view:
                sent = self.sock.send(view, flags)
                view = view[sent:]
        except BlockingIOError:
            raise ConnectionLost("send stalled past the timeout") from None
        except OSError as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc

    @property
    def next_seq(self) -> int:
        """The sequence number the next message (and its reply) will carry."""
        return self._next_seq

    def send_file(self, fd: int, name: str, dest: str, size: int, checksum: bytes) -> int:
        """Send one file from the open `fd`; returns the sequence number its reply will carry.

        If the file shrank under us, the body is padded to the announced size so the stream
        stays in step; the receiver's checksum check then refuses the file. Raises
        ConnectionLost when the receiver refused the file before its body was all sent (the
        refusal is kept for poll_replies) or the link broke; Unsendable, before anything is
        sent, for a name the protocol cannot carry.
        """
        seq = self._next_seq
        try:
            header = FileHeader(seq, name, dest, size, checksum).encode()
        except ProtocolError as exc:
            raise Unsendable(str(exc)) from exc
        self._next_seq += 1
        if self._send_mac is not None:
            header += self._send_mac.tag(header)
        self._send(header, socket.MSG_MORE if size else 0)
        sent = 0
        if self._tls:
            return self._send_body_tls(fd, name, size, seq)
        try:
            while sent < size:
                n = self._sendfile(fd, sent, min(size - sent, BODY_PIECE_BYTES))
                if n == 0:
                    break  # end of file before `size`: the file was truncated
                sent += n
                if sent < size and self._answered_early(seq):
                    raise ConnectionLost(f"the receiver refused {name} before its end")
        except OSError as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc
        if sent < size:
            self._send(bytes(size - sent))
        return seq

    def _send_body_tls(self, fd: int, name: str, size: int, seq: int) -> int:
        """Read and send the body: a TLS socket encrypts in user space, so no sendfile."""
        sent = checked = 0
        try:
            while sent < size:
                data = os.pread(fd, min(size - sent, 1 << 20), sent)
                if not data:
                    break  # the file was truncated: pad below, the checksum refuses it
                self._send(data)
                sent += len(data)
                if sent - checked >= BODY_PIECE_BYTES and sent < size:
                    checked = sent
                    if self._answered_early(seq):
                        raise ConnectionLost(f"the receiver refused {name} before its end")
        except OSError as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc
        if sent < size:
            self._send(bytes(size - sent))
        return seq

    def _answered_early(self, seq: int) -> bool:
        """Whether the receiver has answered file `seq` while its body is still being sent.

        That answer is a refusal, after which the receiver reads no more. Acks of earlier files
        that arrive meanwhile are read too and kept, in order, for poll_replies.
        """
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            self._held = self.poll_replies()
        except ConnectionLost:
            return True  # closed without an answer: the next send fails anyway
        return any(reply.seq == seq for reply in self._held)

    def _recv_nowait(self) -> bytes:
        if not self._tls:
            return self.sock.recv(65536, socket.MSG_DONTWAIT)
        # An SSLSocket takes no recv flags; non-blocking for this one call instead. Kernel
        # deadlines (SO_RCVTIMEO) survive setblocking(True).
        import ssl  # loaded already: the socket is a TLS one

        self.sock.setblocking(False)
        try:
            return self.sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None
        except ssl.SSLError as exc:
            raise self._tls_refusal(exc) from None
        finally:
            self.sock.setblocking(True)

    def _tls_refusal(self, exc: ssl.SSLError) -> Exception:
        """A TLS alert from the receiver is a refusal (TLS 1.3 sends the one about our client
        certificate only after the handshake); anything else is a broken link, retried."""
        where = f"{self.settings.host}:{self.settings.port}"
        if "ALERT" in (exc.reason or ""):
            return HandshakeRefused(
                f"receiver {where} refused the TLS connection ({exc.reason}); "
                "does it want a client certificate (--tls-cert/--tls-key) from another CA?"
            )
        return ConnectionLost(f"receive failed: {exc}")

    def _sendfile(self, fd: int, offset: int, count: int) -> int:
        try:
            return os.sendfile(self.sock.fileno(), fd, offset, count)
        except BlockingIOError:
            # SO_SNDTIMEO passed with no room in the socket buffer: the link is stalled.
            raise ConnectionLost("send stalled past the timeout") from None

    def send_manifest(self, dest: str, body: bytes) -> int:
        """Send a MANIFEST message; returns the sequence number its reply will carry."""
        seq = self._next_seq
        self._next_seq += 1
        message = protocol.encode_manifest(seq, dest, body)
        if self._send_mac is not None:  # the MAC covers the header and destination
            head = protocol.FILE_HEADER_SIZE + len(dest.encode("utf-8"))
            message = message[:head] + self._send_mac.tag(message[:head]) + message[head:]
        self._send(message)
        return seq

    def send_end(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        end = protocol.encode_end(seq)
        self._send(end + self._send_mac.tag(end) if self._send_mac is not None else end)
        return seq

    def poll_replies(self) -> list[Reply]:
        """Replies already received, without waiting.

        Replies that arrived before the connection broke are returned first and the break is
        raised on the next call: a receiver that acks a file and then closes (it is stopping)
        has landed that file, and the sender must count it, not resend or fail it.
        """
        replies, self._held = self._held, []
        if self._lost is not None:
            if replies:
                return replies
            raise ConnectionLost(self._lost)
        while True:
            try:
                data = self._recv_nowait()
            except (BlockingIOError, InterruptedError):
                return replies
            except OSError as exc:
                self._lost = f"receive failed: {exc}"
            else:
                if not data:
                    self._lost = "the receiver closed the connection"
                else:
                    try:
                        replies.extend(self._parser.feed(data))
                        continue
                    except ProtocolError as exc:
                        # Damaged, forged or foreign bytes: this connection cannot be trusted
                        # any more, but a new one can; resend what it did not acknowledge.
                        self._lost = f"bad reply from the receiver: {exc}"
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
