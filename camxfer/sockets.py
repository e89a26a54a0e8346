"""Socket helpers shared by sender and receiver.

Deadlines use the kernel's SO_RCVTIMEO/SO_SNDTIMEO on a blocking socket rather than Python's
`settimeout`: with a Python timeout every recv/send is preceded by a poll() call (one more
syscall per chunk), and a MSG_DONTWAIT recv still waits for the whole timeout. A kernel
timeout makes the call fail with EAGAIN (BlockingIOError) when the deadline passes.
"""

from __future__ import annotations

import socket
import struct


def set_io_timeout(sock: socket.socket, seconds: float) -> None:
    sock.settimeout(None)
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
