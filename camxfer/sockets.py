"""Socket helpers shared by sender and receiver.

Deadlines use the kernel's SO_RCVTIMEO/SO_SNDTIMEO on a blocking socket rather than Python's
`settimeout`: with a Python timeout every recv/send is preceded by a poll() call (one more
syscall per chunk), and a MSG_DONTWAIT recv still waits for the whole timeout. A kernel
timeout makes the call fail with EAGAIN (BlockingIOError) when the deadline passes.
"""

from __future__ import annotations

import socket
import struct


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to `host` (a name or an address) and `port`.

    An ASCII host goes to the resolver as bytes. Given a str, getaddrinfo encodes it with
    Python's IDNA codec, whose first use imports encodings.idna, stringprep and unicodedata:
    ~2.8 ms here, with every connection thread of a `send --once` waiting on the import lock.
    For an ASCII name the bytes are the same either way.
    """
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    # typeshed has the host as str only; getaddrinfo takes bytes as well.
    return socket.create_connection((name, port), timeout=timeout)  # type: ignore[arg-type]


def set_io_timeout(sock: socket.socket, seconds: float) -> None:
    """Blocking mode, and `seconds` for each receive and each send."""
    sock.settimeout(None)
    timeval = _timeval(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """`seconds` for each receive; the socket must be blocking already (`set_io_timeout`)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def set_dead_peer_detection(sock: socket.socket, seconds: float) -> None:
    """Make the kernel give up on a peer that has been silent for about `seconds`.

    A link cut without a RST (a cable pulled, a veth taken down, a host powered off) leaves an
    idle connection looking healthy for ever: keepalive probes start after `seconds`/2 of
    silence, three of them `seconds`/6 apart, and a live peer's kernel answers them however
    idle its program is. TCP_USER_TIMEOUT bounds how long sent data may go unacknowledged
    (otherwise the kernel retransmits to a dead peer for ~15 minutes, tcp_retries2). A dead
    connection then fails its pending recv with ETIMEDOUT. See tcp(7), RFC 1122 4.2.3.6
    and RFC 5482.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(seconds / 2)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(seconds / 6)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, int(seconds * 1000)))
