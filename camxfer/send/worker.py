"""A connection worker: takes ready files from the queue and pushes them down one connection.

Per file: open, check it is still the file judged complete (same inode), read it once to
compute the checksum, check it did not change while read, then send header + zero-copy body.
Up to `window` files are in flight before the worker waits for an ack. A broken connection
puts every unacknowledged file back in the queue (with backoff), and a reconnect resumes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import stat
import threading
import time
from collections import deque
from typing import NamedTuple

from camxfer.buffers import BufferPool, anonymous_map
from camxfer.protocol import Reply, Status, new_hasher
from camxfer.send.connection import (
    Connection,
    ConnectionLost,
    ConnectionSettings,
    HandshakeRefused,
    Unsendable,
)
from camxfer.send.options import SendOptions
from camxfer.send.scan import ReadyFile

log = logging.getLogger("camxfer.send")

READ_BUFFER_BYTES = 1 << 20
# One read buffer per connection worker, reused by the next run's workers (camxfer.buffers).
READ_BUFFERS = BufferPool(anonymous_map, READ_BUFFER_BYTES, keep=64)
MAX_BACKOFF_S = 5.0


def backoff_delay(attempt: int) -> float:
    """Exponential backoff: 0.1 s, 0.2 s, 0.4 s ... capped at 5 s."""
    return min(0.1 * (2 ** max(attempt - 1, 0)), MAX_BACKOFF_S)


class WorkQueue:
    """Ready files waiting for a connection: one shared lane, or one lane per connection.

    Lanes are used when each connection announces its file count up front (--once with a
    receiver that wants counts): then a file must stay with its connection.
    """

    def __init__(self, lanes: int = 1) -> None:
        self._lanes: list[deque[ReadyFile]] = [deque() for _ in range(lanes)]
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: ReadyFile, lane: int = 0) -> None:
        with self._cond:
            self._lanes[lane % len(self._lanes)].append(item)
            self._cond.notify_all()

    def close(self) -> None:
        """No new files will come (retries still may, until the workers finish)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def queued(self) -> int:
        """Files waiting in every lane (for progress and metrics)."""
        with self._cond:
            return sum(len(lane) for lane in self._lanes)

    def pending(self, lane: int) -> int:
        with self._cond:
            return len(self._lanes[lane % len(self._lanes)])

    def get(self, lane: int, timeout: float) -> ReadyFile | None:
        deadline = time.monotonic() + timeout
        lane_items = self._lanes[lane % len(self._lanes)]
        with self._cond:
            while True:
                now = time.monotonic()
                for index, item in enumerate(lane_items):
                    if item.not_before <= now:
                        del lane_items[index]
                        return item
                if self._closed and not lane_items:
                    # Nothing more will come. Waiting out the timeout here held up the end
                    # of every --once run by up to 50 ms.
                    return None
                wait = deadline - now
                if lane_items:
                    wait = min(wait, min(i.not_before for i in lane_items) - now)
                if wait <= 0:
                    return None
                self._cond.wait(wait)

    def take_all(self, lane: int) -> list[ReadyFile]:
        """Remove and return every file waiting in `lane`, due or not."""
        with self._cond:
            lane_items = self._lanes[lane % len(self._lanes)]
            items = list(lane_items)
            lane_items.clear()
            return items

    def drained(self, lane: int) -> bool:
        with self._cond:
            return self._closed and not self._lanes[lane % len(self._lanes)]


class Result(NamedTuple):
    kind: str  # landed | failed | vanished | recheck | retry | fatal
    item: ReadyFile | None
    size: int = 0
    duplicate: bool = False
    reason: str = ""
    at: float = 0.0  # when the ack came (monotonic), for "landed"
    checksum: bytes = b""  # of the bytes sent, for "landed" (the run's manifest lists it)


class _InFlight(NamedTuple):
    item: ReadyFile
    size: int
    checksum: bytes = b""


class ConnectionWorker(threading.Thread):
    def __init__(
        self,
        index: int,
        opts: SendOptions,
        work: WorkQueue,
        results: queue.Queue[Result],
        *,
        announce_counts: bool,
        stop_taking: threading.Event,
        abandon: threading.Event,
        connect_early: bool = False,
        connect_after: threading.Event | None = None,
    ) -> None:
        super().__init__(name=f"camxfer-conn-{index}", daemon=True)
        self.index = index
        self.opts = opts
        self.work = work
        self.results = results
        self.announce_counts = announce_counts
        self.connect_early = connect_early
        self.connect_after = connect_after  # connect early only once this is set
        self.stop_taking = stop_taking
        self.abandon = abandon
        self.settings = ConnectionSettings(
            opts.host,
            opts.port,
            opts.connect_timeout,
            opts.ack_timeout,
            opts.sndbuf,
            opts.rcvbuf,
            auth_key=opts.auth_key,
            tls=opts.tls,
        )
        self._buffer = READ_BUFFERS.take()
        self._conn: Connection | None = None
        self._inflight: dict[int, _InFlight] = {}
        self._connect_failures = 0
        self.abandoned: list[ReadyFile] = []
        # Set before start: at the end, leave the connection open (without END) in `kept`,
        # so the run's manifest goes on one of its own connections.
        self.keep_open = False
        self.kept: Connection | None = None

    # --- main loop ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.connect_early:
                if self.connect_after is not None:
                    self.connect_after.wait()
                self._connect_early()
            self._loop()
            self._finish()
        except HandshakeRefused as exc:
            self.results.put(Result("fatal", None, reason=str(exc)))
        except Exception as exc:  # a bug must not leave the run hanging
            log.exception("connection worker %d crashed", self.index)
            self.results.put(Result("fatal", None, reason=f"internal error: {exc}"))
        finally:
            self._close()
            for flight in self._inflight.values():
                self.abandoned.append(flight.item)
            self._inflight.clear()
            READ_BUFFERS.give(self._buffer)

    def _loop(self) -> None:
        while not self.abandon.is_set():
            item = None
            if not self.stop_taking.is_set() and len(self._inflight) < self.opts.window:
                item = self.work.get(self.index, 0.0 if self._inflight else 0.05)
            if item is None:
                if self._inflight:
                    self._collect(block=True)
                    continue
                if self.stop_taking.is_set() or self.work.drained(self.index):
                    return
                continue
            self._send(item)

    def _connect_early(self) -> None:
        """Connect before the first file is ready, so the connect and handshake overlap the
        planner's first scan (or the wait for the first frame) instead of delaying the first
        file. A receiver not up yet is no error here: the first file connects again."""
        try:
            self._connection(extra=0)
        except ConnectionLost as exc:
            log.debug("connection %d: not connected yet (%s)", self.index, exc)

    def _send(self, item: ReadyFile) -> None:
        prepared = self._prepare(item)
        if prepared is None:
            return
        fd, size, checksum = prepared
        try:
            try:
                conn = self._connection(extra=1)
            except ConnectionLost as exc:
                self._connection_lost(str(exc), also=item)
                return
            # In flight from its header on: a reply that comes before the body is all sent
            # (a refusal) settles it like any other, instead of it being resent.
            self._inflight[conn.next_seq] = _InFlight(item, size, checksum)
            try:
                conn.send_file(fd, item.wire_name, self.opts.dest_path, size, checksum)
            except ConnectionLost as exc:
                self._connection_lost(str(exc))
                return
            except Unsendable as exc:
                # Nothing of it went out: this file alone fails, and the connection goes on.
                del self._inflight[conn.next_seq]
                self.results.put(Result("failed", item, reason=f"cannot be sent: {exc}"))
                return
            self._collect(block=False)
        finally:
            os.close(fd)

    def _prepare(self, item: ReadyFile) -> tuple[int, int, bytes] | None:
        """Open and checksum the file; None when it vanished or changed (reported)."""
        try:
            # O_NONBLOCK: a FIFO put in a frame's place since it was listed must not block
            # the worker (and the run) for ever; on a regular file it changes nothing.
            fd = os.open(item.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self.results.put(Result("vanished", item, reason="deleted before it was read"))
            return None
        except OSError as exc:
            self.results.put(Result("failed", item, reason=f"cannot open: {exc.strerror}"))
            return None
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                os.close(fd)
                self.results.put(Result("failed", item, reason="not a regular file"))
                return None
            if before.st_ino != item.inode:
                os.close(fd)
                self.results.put(Result("recheck", item, reason="replaced since judged complete"))
                return None
            hasher = new_hasher()
            view = memoryview(self._buffer)
            total = 0
            # Read the size fstat gave, not to EOF: that saves a read per file. A file that
            # grew or shrank meanwhile fails the size and mtime checks below.
            while total < before.st_size:
                n = os.readv(fd, [view[: before.st_size - total]])
                if not n:
                    break
                hasher.update(view[:n])
                total += n
            after = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self.results.put(Result("failed", item, reason=f"cannot read: {exc.strerror}"))
            return None
        if total != after.st_size or (before.st_size, before.st_mtime_ns) != (
            after.st_size,
            after.st_mtime_ns,
        ):
            os.close(fd)
            self.results.put(Result("recheck", item, reason="changed while being read"))
            return None
        return fd, total, hasher.digest()

    # --- connection management ----------------------------------------------------------------
    def _connection(self, extra: int) -> Connection:
        if self._conn is not None:
            return self._conn
        announce = None
        if self.announce_counts:
            announce = self.work.pending(self.index) + len(self._inflight) + extra
        self._conn = Connection(self.settings, announce)  # raises ConnectionLost / HandshakeRefused
        self._connect_failures = 0
        # Per connection, not per file; at debug level because a trigger opens --conns of
        # them per camera (the receiver logs every connection at info level).
        log.debug(
            "connection %d: connected to %s:%d",
            self.index,
            self.settings.host,
            self.settings.port,
            extra={
                "event": "connection_opened",
                "peer": f"{self.settings.host}:{self.settings.port}",
            },
        )
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            log.debug(
                "connection %d: closed",
                self.index,
                extra={
                    "event": "connection_closed",
                    "peer": f"{self.settings.host}:{self.settings.port}",
                },
            )

    def _connection_lost(self, reason: str, also: ReadyFile | None = None) -> None:
        if self._conn is not None:
            # Acks that arrived before the break (a send can fail while they wait unread)
            # still count: those files landed and must not be resent or reported failed.
            with contextlib.suppress(ConnectionLost):
                for reply in self._conn.poll_replies():
                    self._handle_reply(reply)
        self._close()
        self._connect_failures += 1
        items = [f.item for f in self._inflight.values()]
        self._inflight.clear()
        if also is not None:
            items.append(also)
        log.warning("connection %d: %s; %d file(s) to resend", self.index, reason, len(items))
        for item in items:
            self._retry(item, reason)
        if self._connect_failures > self.opts.retries:
            # The receiver has been unreachable for a whole retry budget. Each queued file
            # would otherwise need retries+1 connection failures of its own, each followed by
            # a backoff of up to 5 s: with a receiver down, --once would take hours to end.
            waiting = self.work.take_all(self.index)
            if waiting:
                log.warning(
                    "connection %d: receiver unreachable after %d attempts; %d file(s) failed",
                    self.index,
                    self._connect_failures,
                    len(waiting),
                )
            for item in waiting:
                self.results.put(Result("failed", item, reason=f"{reason} (receiver unreachable)"))
        # Back off before reconnecting, waking early if the run is being abandoned.
        self.abandon.wait(backoff_delay(self._connect_failures))

    def _retry(self, item: ReadyFile, reason: str) -> None:
        item.attempts += 1
        if item.attempts > self.opts.retries:
            self.results.put(
                Result("failed", item, reason=f"{reason} (gave up after {item.attempts} attempts)")
            )
            return
        self.results.put(Result("retry", item, reason=reason))
        item.not_before = time.monotonic() + backoff_delay(item.attempts)
        self.work.put(item, self.index)

    # --- acknowledgements ---------------------------------------------------------------------
    def _collect(self, *, block: bool) -> None:
        if self._conn is None:
            return
        try:
            if block:
                replies = self._conn.wait_replies(self.opts.ack_timeout)
            else:
                replies = self._conn.poll_replies()
        except ConnectionLost as exc:
            self._connection_lost(str(exc))
            return
        for reply in replies:
            self._handle_reply(reply)

    def _handle_reply(self, reply: Reply) -> None:
        flight = self._inflight.pop(reply.seq, None)
        if flight is None:
            return  # an END reply or a handshake-level error; nothing in flight under it
        item = flight.item
        if reply.status.landed:
            self.results.put(
                Result(
                    "landed",
                    item,
                    size=flight.size,
                    duplicate=reply.status == Status.DUPLICATE,
                    at=time.monotonic(),
                    checksum=flight.checksum,
                )
            )
        elif reply.status == Status.CHECKSUM_MISMATCH:
            # The bytes sent differ from the bytes hashed: the file changed mid-send.
            item.attempts += 1
            if item.attempts > self.opts.retries:
                self.results.put(Result("failed", item, reason=reply.message))
            else:
                self.results.put(Result("recheck", item, reason=reply.message))
        elif reply.status.retryable:
            self._retry(item, f"receiver: {reply.message}")
        else:
            self.results.put(Result("failed", item, reason=f"receiver: {reply.message}"))

    def _finish(self) -> None:
        """Wait for the last acks, then close the connection with END."""
        deadline = time.monotonic() + self.opts.ack_timeout
        while self._inflight and self._conn is not None and not self.abandon.is_set():
            if time.monotonic() > deadline:
                break
            self._collect(block=True)
        if self.keep_open and self._conn is not None and not self._inflight:
            self.kept, self._conn = self._conn, None
            return
        if self._conn is not None and not self._inflight:
            try:
                seq = self._conn.send_end()
                while True:
                    replies = self._conn.wait_replies(self.opts.ack_timeout)
                    end = [r for r in replies if r.seq == seq]
                    if end:
                        if end[0].status != Status.OK:
                            log.warning(
                                "connection %d: receiver at end: %s", self.index, end[0].message
                            )
                        break
            except ConnectionLost:
                pass
