"""Reading one receiver connection: a buffer of what has arrived, and how long to wait for more.

Responsible for: handing out exact-length pieces (handshake, headers, names, a manifest) and a
file's body in chunks, from one reused buffer filled by as few recv calls as the sender's
pace allows (a header, its names and the start of the body, or a small body and the next
header, usually come in one), and the socket timeouts: a long idle wait between messages,
--io-timeout for a stall, and a deadline by which a handshake or header must be whole.
Not responsible for: what the bytes mean (`session`).

Reading a header's pieces with one recv each, and setting the socket timeout before each,
cost about 15 system calls per file; in a steady stream this now costs none beyond the
receives themselves.
"""

from __future__ import annotations

import mmap
import socket
import time
from collections.abc import Iterator

from camxfer.sockets import set_io_timeout, set_recv_timeout

# Room kept free after the buffered bytes before a receive: below it they move to the front.
_MIN_ROOM = 64 << 10


class ConnectionClosed(Exception):
    """The peer closed or stalled; the session ends."""


class Inbox:
    """The receive side of one connection: its buffer, timeouts and header deadline."""

    def __init__(self, sock: socket.socket, buffer: bytearray | mmap.mmap) -> None:
        self.sock = sock
        self._buffer = buffer
        self._view = memoryview(buffer)
        self._start = 0  # buffered bytes are _buffer[_start:_end]
        self._end = 0
        self._timeout: float | None = None  # the socket's receive timeout now
        # A handshake or a message header (with its names) must be whole by this time (see
        # start_deadline); None while a body streams or the connection waits idle.
        self._deadline: float | None = None
        self.heard = False  # any byte from the peer yet (a port probe sends none)
        # The most one receive into the buffer takes. While bodies go straight into an O_DIRECT
        # stage (`receive_into`), the session lowers it, so a header's receive does not also
        # pull in most of the next body, only for it to be copied out again.
        self.fill_limit = len(buffer)

    # --- timeouts ----------------------------------------------------------------------------
    def set_timeout(self, seconds: float) -> None:
        """How long one receive may wait. The first call also sets the send timeout and
        blocking mode (kernel timeouts, see camxfer.sockets); later ones only the receive's."""
        if self._timeout is None:
            set_io_timeout(self.sock, seconds)
        elif seconds != self._timeout:
            set_recv_timeout(self.sock, seconds)
        self._timeout = seconds

    def new_socket(self, sock: socket.socket) -> None:
        """Read from `sock` from now on (the same connection, wrapped in TLS)."""
        self.sock = sock
        self._timeout = None

    def start_deadline(self, seconds: float) -> None:
        """A socket timeout only bounds each wait, so a peer sending a byte a second (slow
        loris) would never hit it: what is read from now on must be whole within `seconds`
        of now, as Apache's mod_reqtimeout does for headers, until `end_deadline`."""
        self._deadline = time.monotonic() + seconds

    def end_deadline(self, io_timeout: float) -> None:
        self._deadline = None
        self.set_timeout(io_timeout)

    def deadline_passed(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    # --- reading -----------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self._end - self._start

    def wait_for_data(self, timeout: float) -> None:
        """Return once a byte is buffered, waiting up to `timeout` for one."""
        if self._start == self._end:
            self.set_timeout(timeout)
            self._fill()

    def fill_nowait(self) -> bool:
        """Take what has arrived without waiting (a plain socket only: TLS takes no flags);
        True when bytes are buffered now. A closed or failed connection reads as nothing
        yet: the next waiting receive reports it.

        Asking this way, rather than with select() before waiting, makes the common case,
        the next message already there, one system call instead of four (select, then the
        idle timeout set for the wait and the I/O timeout set back after the header)."""
        if self._start != self._end:
            return True
        self._start = self._end = 0
        try:
            got = self.sock.recv_into(self._view, self.fill_limit, socket.MSG_DONTWAIT)
        except OSError:  # nothing yet (EAGAIN), or a failure the waiting receive will raise
            return False
        if got:
            self.heard = True
            self._end = got
        return bool(got)

    def read_exact(self, n: int) -> bytes:
        if self._end - self._start < n:
            if n > len(self._buffer):
                return self._read_large(n)
            if len(self._buffer) - self._start < max(n, _MIN_ROOM):
                self._compact()
            while self._end - self._start < n:
                self._fill()
        start = self._start
        self._start += n
        return bytes(self._view[start : self._start])

    def chunks(self, size: int) -> Iterator[memoryview]:
        """`size` bytes in pieces; each piece is only valid until the next one is asked for.
        Bytes that arrive after these `size` stay buffered for the next message."""
        remaining = size
        while remaining:
            chunk = self.take(remaining)
            remaining -= len(chunk)
            yield chunk

    def take(self, limit: int) -> memoryview:
        """Up to `limit` bytes: those buffered, else what one receive brings. Valid until the
        next read."""
        if self._start == self._end:
            self._fill()
        start = self._start
        self._start += min(self._end - start, limit)
        return self._view[start : self._start]

    def receive_into(self, target: memoryview) -> int:
        """Receive straight into `target` (at least a byte, at most its length), bypassing the
        buffer, which must be empty: what is buffered comes first, through `take`."""
        assert self._start == self._end, "buffered bytes come before received ones"
        return self._receive(target)

    def _read_large(self, n: int) -> bytes:
        """More than the buffer holds (a manifest): gathered piece by piece."""
        out = bytearray()
        for chunk in self.chunks(n):
            out += chunk
        return bytes(out)

    def _compact(self) -> None:
        left = self._end - self._start
        self._buffer[:left] = self._view[self._start : self._end]
        self._start, self._end = 0, left

    def _fill(self) -> None:
        """Receive what has arrived (at least a byte, at most `fill_limit`) after the buffered
        bytes."""
        if self._start == self._end:  # nothing buffered: all the room is free again
            self._start = self._end = 0
        room = len(self._buffer) - self._end
        self._end += self._receive(self._view[self._end : self._end + min(room, self.fill_limit)])

    def _receive(self, target: memoryview) -> int:
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise ConnectionClosed("handshake or message header not complete in time")
            if self._timeout is None or left < self._timeout:
                self.set_timeout(left)
        try:
            got = self.sock.recv_into(target)
        except (TimeoutError, BlockingIOError) as exc:
            raise ConnectionClosed("stalled past the deadline") from exc
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc
        if got == 0:
            raise ConnectionClosed("closed by the sender")
        self.heard = True
        return got
