"""A fault-injecting TCP relay for the tests: a bad link between a sender and a receiver.

Toxiproxy's idea in a few threads (RELIABILITY-NOTES §2): the sender connects to the relay on
loopback, the relay connects to the receiver and forwards bytes both ways, and on the way it
can add latency, stall (forward nothing for a while, so the peers' buffers fill and their
deadlines run), reset a connection after a number of bytes (RST to both ends, as a broken
NAT or a rebooted middlebox does), flip one byte (corruption TCP's checksum let through), or
cut the stream into tiny segments. Toxics can be changed while connections are open.
Not here: anything camxfer-specific beyond `upstream_offset` helpers the tests compute.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class Toxics:
    """What the relay does to the bytes; every field may change while it runs."""

    latency: float = 0.0  # seconds each forwarded chunk waits, both directions
    slice_bytes: int = 0  # forward in segments of at most this many bytes (0 = as read)
    slice_pause: float = 0.0  # seconds between those segments
    stall_until: float = 0.0  # time.monotonic() before which nothing is forwarded
    # Per connection (numbered from 0): the upstream byte offset at which to reset it, or None.
    reset_at: Callable[[int], int | None] = field(default=lambda _index: None)
    # Per connection: the upstream byte offset whose byte is flipped, or None.
    corrupt_at: Callable[[int], int | None] = field(default=lambda _index: None)
    corrupt_mask: int = 0xFF  # the bits flipped there (0x01: a single-bit error)
    # Per connection: the downstream (receiver -> sender) byte offset whose byte is flipped.
    corrupt_reply_at: Callable[[int], int | None] = field(default=lambda _index: None)

    def stall(self, seconds: float) -> None:
        self.stall_until = time.monotonic() + seconds


@dataclass
class RelayCounters:
    connections: int = 0
    resets: int = 0
    corrupted: int = 0
    upstream_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def _abort(sock: socket.socket) -> None:
    """Close with a RST instead of a FIN (SO_LINGER on, timeout 0).

    A thread blocked in recv() holds the socket open past close() (Linux drops a connection
    when the last reference goes), so wake it first: shutdown(SHUT_RD) sends nothing.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One client connection and its connection to the target."""

    def __init__(self, relay: Relay, index: int, client: socket.socket) -> None:
        self.relay = relay
        self.index = index
        self.client = client
        self.server = socket.create_connection(relay.target, timeout=5)
        self.server.settimeout(None)
        for sock in (self.client, self.server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reset_at = relay.toxics.reset_at(index)
        self.corrupt_at = relay.toxics.corrupt_at(index)
        self.corrupt_reply_at = relay.toxics.corrupt_reply_at(index)
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        for source, target, up in (
            (self.client, self.server, True),
            (self.server, self.client, False),
        ):
            threading.Thread(
                target=self._pump, args=(source, target, up), daemon=True, name="relay-pump"
            ).start()

    def close(self, *, reset: bool = False) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.server):
            if reset:
                _abort(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def _pump(self, source: socket.socket, target: socket.socket, up: bool) -> None:
        toxics = self.relay.toxics
        counters = self.relay.counters
        offset = 0
        try:
            while not self.closed.is_set():
                data = source.recv(CHUNK)
                if not data:
                    # Pass the half-close on, so a peer's FIN arrives as a FIN.
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    return
                while time.monotonic() < toxics.stall_until and not self.closed.is_set():
                    time.sleep(0.02)
                if toxics.latency:
                    time.sleep(toxics.latency)
                if up:
                    data, cut = self._damage(data, offset)
                    offset += len(data)
                    with counters.lock:
                        counters.upstream_bytes += len(data)
                    self._forward(target, data, toxics)
                    if cut:
                        with counters.lock:
                            counters.resets += 1
                        self.close(reset=True)
                        return
                else:
                    at = self.corrupt_reply_at
                    if at is not None and offset <= at < offset + len(data):
                        mask = toxics.corrupt_mask
                        data = (
                            data[: at - offset]
                            + bytes([data[at - offset] ^ mask])
                            + data[at - offset + 1 :]
                        )
                        self.corrupt_reply_at = None
                        with counters.lock:
                            counters.corrupted += 1
                    offset += len(data)
                    self._forward(target, data, toxics)
        except OSError:
            pass
        self.close()

    def _damage(self, data: bytes, offset: int) -> tuple[bytes, bool]:
        """Apply corruption and the reset point to the upstream chunk at `offset`."""
        end = offset + len(data)
        if self.corrupt_at is not None and offset <= self.corrupt_at < end:
            at = self.corrupt_at - offset
            mask = self.relay.toxics.corrupt_mask
            data = data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]
            self.corrupt_at = None
            with self.relay.counters.lock:
                self.relay.counters.corrupted += 1
        if self.reset_at is not None and self.reset_at < end:
            return data[: max(self.reset_at - offset, 0)], True
        return data, False

    @staticmethod
    def _forward(target: socket.socket, data: bytes, toxics: Toxics) -> None:
        if not toxics.slice_bytes:
            target.sendall(data)
            return
        for start in range(0, len(data), toxics.slice_bytes):
            target.sendall(data[start : start + toxics.slice_bytes])
            if toxics.slice_pause:
                time.sleep(toxics.slice_pause)


class Relay:
    """Listens on 127.0.0.1 (a free port) and relays every connection to `target`."""

    def __init__(
        self, target: tuple[str, int], toxics: Toxics | None = None, *, rcvbuf: int = 0
    ) -> None:
        """`rcvbuf` caps what the relay buffers from senders, so a slow link pushes back on
        them at once instead of after megabytes (it must be set before listen)."""
        self.target = target
        self.toxics = toxics or Toxics()
        self.counters = RelayCounters()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="relay-accept")

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self.counters.lock:
                index = self.counters.connections
                self.counters.connections += 1
            try:
                link = _Link(self, index, client)
            except OSError:
                _abort(client)  # the target is down: the client sees a reset, as it would
                continue
            self._links.append(link)
            link.start()

    def reset_all(self) -> None:
        """Reset every open connection now (both ends get a RST)."""
        for link in list(self._links):
            if not link.closed.is_set():
                with self.counters.lock:
                    self.counters.resets += 1
                link.close(reset=True)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for link in list(self._links):
            link.close()
        if self._thread.is_alive():
            self._thread.join(2)
