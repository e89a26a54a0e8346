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
import mmap
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from camxfer import auth, metrics, protocol
from camxfer.buffers import BufferPool, anonymous_map
from camxfer.errors import ProtocolError, UnsafePathError
from camxfer.protocol import FixedHeader, MessageType, Reply, Status
from camxfer.recv import direct
from camxfer.recv.inbox import ConnectionClosed, Inbox
from camxfer.recv.landing import (
    BatchFolders,
    ChecksumMismatch,
    ExistsDifferent,
    FileLanding,
    LandingRoot,
    dirty_bytes,
    resolve_destination,
    sync_sealed,
    syncfs_pays_off,
)
from camxfer.recv.manifest import manifest_reply
from camxfer.sockets import set_io_timeout
from camxfer.tls import TLS_HANDSHAKE_BYTE, TlsFiles

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("camxfer.recv")

BUFFER_BYTES = 1 << 20  # one reused receive buffer per connection
# The most one receive into that buffer takes while files land with O_DIRECT: a header and its
# names, with a little of the body after them (see _receive_body).
DIRECT_HEADER_FILL = 4096
# Given back when the connection ends, for the next one (camxfer.buffers).
RECEIVE_BUFFERS = BufferPool(anonymous_map, BUFFER_BYTES, keep=32)
# How often --direct-io auto looks at the machine's dirty data when flushes are of one file.
DIRECT_LOOK_SECONDS = 0.1
MAX_BATCH = 32  # files landed before their folder fsync and acks are forced out
# After an error reply: how long and how much input to discard before closing (see _linger).
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 << 20
# After refusing a file at its header (TOO_LARGE): the sender stops within one piece of its
# body once it sees the refusal (send/connection.py BODY_PIECE_BYTES); until then its bytes
# are drained, up to this much, so a reset does not destroy the refusal on the way.
REFUSED_BODY_DRAIN_BYTES = 64 << 20
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
    # The shared key: senders must prove they hold it, and every message after is MACed.
    auth_key: bytes | None = field(default=None, repr=False)
    handshake_timeout: float = 10.0  # whole authenticated handshake, however it trickles in
    tls: TlsFiles | None = None  # take TLS connections only (camxfer.tls)
    direct_io: str = "auto"  # when to land with O_DIRECT: one of camxfer.recv.direct.POLICIES


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


@dataclass
class Unacked:
    """A file received on this connection whose reply waits for the next group commit."""

    fixed: FixedHeader
    name: str
    landing: FileLanding | None = None  # sealed: made durable and linked at the flush
    reply: Reply | None = None  # decided already (refused before the flush)
    camera: str = "-"  # metrics label (from the destination)
    started: float = 0.0  # monotonic time its header arrived (for the durable latency)


class AuthenticationFailed(Exception):
    """A handshake proof or a message MAC did not check out; the session ends."""


class Session:
    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        root: LandingRoot,
        settings: ReceiverSettings,
        counters: SessionCounters,
        failures: auth.FailureCounter | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.sock = sock
        self.tls = tls
        self.peer = peer
        self.root = root
        self.settings = settings
        self.counters = counters
        self.busy = False  # inside a message: a graceful stop lets it finish
        self.stopping = False  # set on a graceful stop: finish the current file, take no more
        self._buffer = RECEIVE_BUFFERS.take()
        self.inbox = Inbox(sock, self._buffer)
        # O_DIRECT landing (camxfer.recv.direct): decided again at each group commit.
        self._land_direct = direct.wanted(settings.direct_io, others_writing=False)
        self._stage: mmap.mmap | None = None  # taken at the first direct landing
        self._tls_sock: ssl.SSLSocket | None = None  # self.sock, once wrapped in TLS
        self._direct_looked = -DIRECT_LOOK_SECONDS  # monotonic time of the last look
        self.announced: int | None = None
        self.received = 0  # files, not FILE messages: a resend on this connection counts once
        # Names refused here with an error the sender retries (on this connection, if it
        # stays up): when one comes again it is the same file, not one more.
        self._may_come_again: set[str] = set()
        self._pending: list[Unacked] = []  # files waiting for the group commit and their ack
        self._folders = BatchFolders(root)  # the pending files' folders, open until the flush
        # Authentication (only with settings.auth_key): see _authenticate.
        self.failures = failures or auth.FailureCounter()
        self._authenticated = False
        self._recv_mac: auth.MessageMac | None = None
        self._send_mac: auth.MessageMac | None = None
        self._names: bytes | None = None  # a FILE's name and destination, read to check its MAC
        # Metrics (None when off): landed files waiting for their ack, with their start time.
        self._metrics = metrics.recorder()
        self._durable: list[tuple[float, str]] = []
        self._camera = "-"
        self._closed_because = "the sender ended the session"
        self._opened = False  # handshake done: its close is worth an info line

    # --- reading -----------------------------------------------------------------------------
    def _start_deadline(self, seconds: float | None = None) -> None:
        """The handshake, or a message's header and names, must be whole within `seconds`
        (--io-timeout) of its first byte, however slowly its bytes trickle (Inbox)."""
        self.inbox.start_deadline(seconds or self.settings.io_timeout)

    def _end_deadline(self) -> None:
        self.inbox.end_deadline(self.settings.io_timeout)

    def _encode(self, reply: Reply) -> bytes:
        data = reply.encode()
        return data + self._send_mac.tag(data) if self._send_mac is not None else data

    def _reply(self, reply: Reply) -> None:
        try:
            self.sock.sendall(self._encode(reply))
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc

    # --- protocol ----------------------------------------------------------------------------
    def run(self) -> None:
        if self._metrics:
            self._metrics.receiver_connections.inc()
        try:
            if (self.tls is None or self._start_tls()) and self._handshake():
                self._serve_messages()
        except AuthenticationFailed as exc:
            if self._authenticated:  # files landed before the bad message were genuine: ack
                with contextlib.suppress(ConnectionClosed):
                    self._flush()
            self._authentication_failed(str(exc))
        except ConnectionClosed as exc:
            if self.settings.auth_key is not None and not self._authenticated:
                if self.inbox.heard or self.inbox.deadline_passed():
                    self._authentication_failed(f"handshake not completed: {exc}", reply=False)
                else:  # connected and closed without a word: a port probe, not an attempt
                    log.debug("%s: connection ended before the handshake (%s)", self.peer, exc)
            elif self.announced is not None and self.received != self.announced:
                log.warning(
                    "%s: connection ended after %d of %d announced files (%s)",
                    self.peer,
                    self.received,
                    self.announced,
                    exc,
                )
            self._closed_because = str(exc)
        except ProtocolError as exc:
            self._closed_because = f"protocol error: {exc}"
            if self.settings.auth_key is not None and not self._authenticated:
                self._authentication_failed(f"protocol error: {exc}", reply=False)
            else:
                log.warning("%s: protocol error, closing: %s", self.peer, exc)
                self.counters.add(errors=1)
            with contextlib.suppress(ConnectionClosed):
                self._reply(Reply(0, Status.BAD_REQUEST, str(exc)))
            self._linger()
        finally:
            for item in self._pending:  # never acknowledged: the sender resends them
                if item.landing is not None:
                    item.landing.abort()
            self._folders.close()
            self.sock.close()
            if self._metrics:
                self._metrics.receiver_connections.dec()
            # A port probe (camxfer status, Ansible's wait_for) connects and closes at once:
            # its close is only debug detail.
            log.log(
                logging.INFO if self._opened else logging.DEBUG,
                "%s: connection closed (%s) after %d files",
                self.peer,
                self._closed_because,
                self.received,
                extra={
                    "event": "connection_closed",
                    "peer": self.peer,
                    "reason": self._closed_because,
                    "files": self.received,
                },
            )
            RECEIVE_BUFFERS.give(self._buffer)
            if self._stage is not None:
                direct.STAGES.give(self._stage)

    def _linger(self, limit: int = LINGER_BYTES) -> None:
        """Half-close after an error reply and discard what the peer still sends, briefly
        (at most `limit` bytes, for at most LINGER_SECONDS).

        Closing a socket with unread input makes Linux send a RST, and a RST makes the
        peer's kernel drop data it has not read yet, which would include our error reply
        (RFC 1122 4.2.2.13; nginx "lingering_close" exists for the same reason).
        """
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < limit and (left := deadline - time.monotonic()) > 0:
                set_io_timeout(self.sock, max(left, 0.001))
                got = self.sock.recv_into(self._buffer, BUFFER_BYTES)
                if not got:
                    break
                drained += got

    def _handshake(self) -> bool:
        self.inbox.set_timeout(self.settings.io_timeout)
        # The whole handshake must be done by its deadline (slow loris), however its bytes trickle.
        self._start_deadline(
            self.settings.handshake_timeout if self.settings.auth_key is not None else None
        )
        raw_hello = self.inbox.read_exact(protocol.HELLO_SIZE)
        hello = protocol.decode_hello(raw_hello)
        # Fixed length: read it whatever we decide, so a refusal reply stays in step.
        client_nonce = self.inbox.read_exact(protocol.NONCE_SIZE) if hello.auth else b""
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
        if not self._authenticate(hello, raw_hello, client_nonce):
            return False
        if self.settings.expect_count_first and hello.announced is None:
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
        self.announced = hello.announced
        self._reply(Reply(0, Status.OK, f"camxfer/{protocol.VERSION}"))
        log.info(
            "%s: connected%s",
            self.peer,
            f", announcing {hello.announced} files" if hello.announced is not None else "",
            extra={"event": "connection_opened", "peer": self.peer},
        )
        self._opened = True
        self._end_deadline()
        return True

    def _authenticate(self, hello: protocol.Hello, raw_hello: bytes, client_nonce: bytes) -> bool:
        """The challenge-response of docs/protocol.md; True when the session may go on.

        A key on one side only is refused with a clear reply, never downgraded to an
        unauthenticated session.
        """
        key = self.settings.auth_key
        if key is None:
            if not hello.auth:
                return True
            log.warning("%s: sender offered a shared key; this receiver has none", self.peer)
            self._reply(
                Reply(
                    0,
                    Status.AUTH_UNSUPPORTED,
                    "this receiver has no shared key (--auth-key-file) and will not "
                    "accept an authenticated sender unauthenticated",
                )
            )
            self._linger()
            return False
        if not hello.auth:
            self._authentication_failed(
                "sender offered no key",
                "this receiver requires a shared key; give the sender --auth-key-file",
                Status.AUTH_REQUIRED,
            )
            return False
        server_nonce = auth.new_nonce()
        challenge = protocol.Challenge(
            server_nonce, auth.server_proof(key, raw_hello, client_nonce, server_nonce)
        )
        self._reply_raw(challenge.encode())
        try:
            proof = protocol.decode_auth(self.inbox.read_exact(protocol.AUTH_SIZE))
        except ProtocolError:
            proof = b""
        expected = auth.client_proof(key, raw_hello, client_nonce, server_nonce)
        if not auth.proofs_equal(expected, proof):
            raise AuthenticationFailed("wrong proof")
        to_server, to_client = auth.session_macs(key, client_nonce, server_nonce)
        self._recv_mac = auth.MessageMac(to_server)
        self._send_mac = auth.MessageMac(to_client)
        self._authenticated = True
        self._end_deadline()
        return True

    def _start_tls(self) -> bool:
        """Wrap the connection in TLS; a sender speaking camxfer in clear is told so."""
        assert self.tls is not None
        self.inbox.set_timeout(self.settings.handshake_timeout)
        try:
            first = self.sock.recv(1, socket.MSG_PEEK)
        except (TimeoutError, BlockingIOError) as exc:
            raise ConnectionClosed("stalled before the TLS handshake") from exc
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc
        if not first:
            raise ConnectionClosed("closed by the sender")
        self.inbox.heard = True
        if first[0] != TLS_HANDSHAKE_BYTE:
            self._authentication_failed(
                "sender did not start TLS",
                "this receiver takes TLS connections only; give the sender --tls-ca",
                Status.TLS_REQUIRED,
            )
            return False
        try:
            tls_sock = self.tls.wrap_socket(
                self.sock, server_side=True, do_handshake_on_connect=False
            )
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc
        self.sock = self._tls_sock = tls_sock
        self.inbox.new_socket(tls_sock)  # its timeouts are set again
        try:
            tls_sock.do_handshake()
        except OSError as exc:  # ssl.SSLError included
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
            self._authentication_failed(f"TLS handshake failed: {reason}", reply=False)
            return False
        return True

    def _reply_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc

    def _authentication_failed(
        self,
        reason: str,
        message: str = "authentication failed",
        status: Status = Status.AUTH_FAILED,
        *,
        reply: bool = True,
    ) -> None:
        """Count, log and answer one failure; the answer never says which check failed."""
        address = self.peer.rsplit(":", 1)[0]
        count = self.failures.add(address)
        self.counters.add(errors=1)
        log.warning(
            "%s: authentication failed (%s); %d failure(s) from %s so far in this process",
            self.peer,
            reason,
            count,
            address,
        )
        if reply:
            with contextlib.suppress(ConnectionClosed):
                self._reply(Reply(0, status, message))
            self._linger()

    def _check_mac(self, head: bytes, fixed: FixedHeader) -> None:
        """Read a message's MAC (and a FILE's names, which it covers) and check it."""
        assert self._recv_mac is not None
        with_names = fixed.type in (MessageType.FILE, MessageType.MANIFEST)
        names = self.inbox.read_exact(fixed.variable_len) if with_names else b""
        tag = self.inbox.read_exact(protocol.MAC_SIZE)
        if not self._recv_mac.verify(head + names, tag):
            raise AuthenticationFailed(f"message {fixed.seq} failed its MAC")
        self._names = names

    def _data_waiting(self) -> bool:
        if self.inbox.buffered:
            return True
        tls_sock = self._tls_sock  # set by _start_tls when self.tls is, before any message
        if tls_sock is None:
            return self.inbox.fill_nowait()
        if tls_sock.pending():
            return True  # decrypted already, so the socket itself may look idle
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def _flush(self) -> None:
        """Land the files received since the last flush as one group commit, then ack them.

        Their data is made durable together (`sync_sealed`) unless other writers' dirty data
        would make that the slower way (`syncfs_pays_off`), each is linked under its final
        name, each folder is fsynced once, and only then do the replies go out, in order.
        The same look at the machine's dirty data decides whether the next files land with
        O_DIRECT (--direct-io auto).
        """
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        sync_error: OSError | None = None
        try:
            landings = [i.landing for i in pending if i.landing is not None]
            own_dirty = sum(landing.size for landing in landings if not landing.direct)
            dirty = dirty_bytes() if len(landings) > 1 or self._direct_look_due() else None
            pays_off = syncfs_pays_off(own_dirty, dirty)
            if dirty is not None:
                others = direct.others_writing(own_dirty, dirty)
                self._choose_direct(direct.wanted(self.settings.direct_io, others), dirty)
            data_synced = len(landings) > 1 and pays_off and sync_sealed(landings)
            if not data_synced and len(landings) > 1:
                # An fsync each: the disk takes all their writes first, then each waits.
                for landing in landings:
                    landing.start_writeback()
        except OSError as exc:
            data_synced, sync_error = False, exc
        # Landed or duplicate, with its landing: acked once its folder is durable.
        linked: list[tuple[Unacked, FileLanding]] = []
        try:
            for item in pending:
                self._camera = item.camera
                if item.landing is not None and sync_error is not None:
                    item.landing.abort()
                    item.reply = self._refuse(
                        item.fixed,
                        item.name,
                        _status_for(sync_error),
                        f"cannot make {item.name} durable: {sync_error.strerror}",
                    )
                elif item.landing is not None:
                    item.reply = self._commit(item, data_synced)
                    if item.reply.status in (Status.OK, Status.DUPLICATE):
                        linked.append((item, item.landing))
            durable = self._folders.sync(landing.folders for _item, landing in linked)
        except BaseException:
            for item in pending:  # before their folders close (a no-op for those linked)
                if item.landing is not None:
                    item.landing.abort()
            raise
        finally:
            self._folders.close()
        for item, landing in linked:
            if not durable[landing.folders]:
                item.reply = Reply(
                    item.fixed.seq, Status.IO_ERROR, "cannot make the folder durable"
                )
        # Every item has its reply now: one without a landing was refused before the flush
        # (Unacked(reply=...)), and each one with a landing got its reply above.
        replies = cast("list[Reply]", [item.reply for item in pending])
        try:
            self.sock.sendall(b"".join(self._encode(reply) for reply in replies))
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from exc
        if self._durable:
            self._observe_durable()

    def _observe_durable(self) -> None:
        """Per landed file, header received -> durable and acknowledged (once per flush)."""
        assert self._metrics is not None
        now = time.monotonic()
        for started, camera in self._durable:
            self._metrics.durable_seconds.labels(camera).observe(now - started)
        self._durable.clear()

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
            self.inbox.wait_for_data(self.settings.idle_timeout)
            self.busy = True
            self._start_deadline()
            head = self.inbox.read_exact(protocol.FILE_HEADER_SIZE)
            if protocol.is_manifest(head[0]):
                self._flush()  # the files it lists must be durable before it is checked
                manifest = protocol.decode_manifest_fixed(head)
                if self._recv_mac is not None:
                    self._check_mac(head, manifest)
                self._reply(self._receive_manifest(manifest))
                continue
            # Any size is well-formed here; one over this receiver's limit is answered below
            # with TOO_LARGE for that file, so the sender fails it instead of resending it.
            fixed = protocol.decode_fixed(head, max_file_size=protocol.MAX_SIZE_FIELD)
            if self._recv_mac is not None:
                self._check_mac(head, fixed)
            if fixed.type == MessageType.END:
                self._finish(fixed.seq)
                return
            if fixed.size > self.settings.max_file_size:
                self._refuse_too_large(fixed)
                return
            self._pending.append(self._receive_file(fixed))

    def _refuse_too_large(self, fixed: FixedHeader) -> None:
        """Answer TOO_LARGE and close: draining gigabytes to stay in step is not worth it."""
        message = (
            f"file of {fixed.size} bytes is over this receiver's limit of "
            f"{self.settings.max_file_size} bytes (--max-file-size)"
        )
        self.counters.add(errors=1)
        if self._metrics:  # its names are never read: no camera to tell
            self._metrics.receive_failures.labels("-", Status.TOO_LARGE.name.lower()).inc()
        log.warning(
            "%s: refused: %s",
            self.peer,
            message,
            extra={"event": "file_failed", "peer": self.peer, "reason": message},
        )
        self._flush()
        self._reply(Reply(fixed.seq, Status.TOO_LARGE, message))
        self._linger(min(fixed.size, REFUSED_BODY_DRAIN_BYTES))

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

    def _receive_file(self, fixed: FixedHeader) -> Unacked:
        """Take one file's name and body into a sealed temp (or refuse it, staying in step)."""
        name, dest = self._take_names(fixed)
        if name in self._may_come_again:
            self._may_come_again.discard(name)
        else:
            self.received += 1
        started = time.monotonic()
        if self._metrics:
            self._camera = self._metrics.camera(
                metrics.camera_from_destination(dest, self.settings.out_dir.name)
            )

        def refused(status: Status, message: str) -> Unacked:
            return Unacked(fixed, name, reply=self._refuse(fixed, name, status, message))

        try:
            if dest and not self.settings.use_dest_paths:
                self._drain(fixed.size)
                return refused(
                    Status.DEST_PATHS_DISABLED,
                    "this receiver does not take destination paths "
                    "(start it with --use-dest-paths)",
                )
            folders, final = resolve_destination(self.settings.out_dir, dest, name)
            stage = self._direct_stage()
            landing = FileLanding(
                self.root,
                folders,
                final,
                fixed.size,
                fixed.checksum,
                direct_stage=stage,
                folder_fd=self._folders.open(folders),
            )
        except UnsafePathError as exc:
            self._drain(fixed.size)
            return refused(Status.UNSAFE_PATH, str(exc))
        except OSError as exc:
            self._drain(fixed.size)
            return refused(_status_for(exc), f"cannot create {name}: {exc.strerror}")
        try:
            self._receive_body(landing, fixed.size)
        except BaseException:
            landing.abort()
            raise
        try:
            landing.seal()
        except ChecksumMismatch as exc:
            return refused(Status.CHECKSUM_MISMATCH, str(exc))
        except OSError as exc:
            return refused(_status_for(exc), f"cannot land {name}: {exc.strerror}")
        return Unacked(fixed, name, landing=landing, camera=self._camera, started=started)

    def _commit(self, item: Unacked, data_synced: bool) -> Reply:
        """Link a sealed file under its final name; the flush then fsyncs its folder."""
        fixed, name, landing = item.fixed, item.name, item.landing
        assert landing is not None
        try:
            landed = landing.commit(data_synced=data_synced, sync_folder=False)
        except ExistsDifferent as exc:
            return self._refuse(fixed, name, Status.EXISTS_DIFFERENT, str(exc))
        except UnsafePathError as exc:
            return self._refuse(fixed, name, Status.UNSAFE_PATH, str(exc))
        except OSError as exc:
            return self._refuse(
                fixed, name, _status_for(exc), f"cannot land {name}: {exc.strerror}"
            )
        if self._metrics:
            self._count_landed(item, landed.status == "duplicate")
        if landed.status == "duplicate":
            self.counters.add(duplicates=1)
            log.debug(
                "%s: %s already landed, identical",
                self.peer,
                landed.path,
                extra={"event": "file_duplicate", "peer": self.peer, "file": str(landed.path)},
            )
            return Reply(fixed.seq, Status.DUPLICATE)
        self.counters.add(files=1, nbytes=fixed.size)
        log.debug(
            "%s: landed %s (%d bytes)",
            self.peer,
            landed.path,
            fixed.size,
            extra={
                "event": "file_landed",
                "peer": self.peer,
                "file": str(landed.path),
                "bytes": fixed.size,
            },
        )
        return Reply(fixed.seq, Status.OK)

    def _take_names(self, fixed: FixedHeader) -> tuple[str, str]:
        """A message's name and destination: read by the MAC check already, or read now."""
        names, self._names = self._names, None
        if names is None:
            names = self.inbox.read_exact(fixed.variable_len)
        self._end_deadline()  # the header is whole: the body has its own pace (_BodyPace)
        self.inbox.fill_limit = BUFFER_BYTES  # a body, a drain, a manifest: large receives
        return protocol.decode_names(fixed, names)

    def _count_landed(self, item: Unacked, duplicate: bool) -> None:
        assert self._metrics is not None
        if duplicate:
            self._metrics.received_duplicates.labels(item.camera).inc()
        else:
            self._metrics.received_files.labels(item.camera).inc()
            self._metrics.received_bytes.labels(item.camera).inc(item.fixed.size)
        self._durable.append((item.started, item.camera))

    def _receive_manifest(self, fixed: FixedHeader) -> Reply:
        _name, dest = self._take_names(fixed)
        body = self.inbox.read_exact(fixed.size)
        reply = manifest_reply(self.root, self.settings.use_dest_paths, fixed, dest, body)
        if reply.status != Status.OK:
            self.counters.add(errors=1)
            log.warning("%s: manifest refused: %s", self.peer, reply.message)
        return reply

    def _choose_direct(self, land_direct: bool, dirty: int) -> None:
        if land_direct != self._land_direct:
            log.debug(
                "%s: %s (the machine holds %d MiB of dirty data)",
                self.peer,
                "landing with O_DIRECT" if land_direct else "landing through the page cache",
                dirty >> 20,
                extra={"event": "direct_io", "peer": self.peer, "direct": land_direct},
            )
        self._land_direct = land_direct

    def _direct_look_due(self) -> bool:
        """With --direct-io auto, whether a flush of one file should look at the machine's
        dirty data: at most every DIRECT_LOOK_SECONDS (a look costs ~20 µs; a flush of
        several files looks anyway, for its syncfs)."""
        if self.settings.direct_io != "auto":
            return False
        now = time.monotonic()
        if now - self._direct_looked < DIRECT_LOOK_SECONDS:
            return False
        self._direct_looked = now
        return True

    def _direct_stage(self) -> mmap.mmap | None:
        """The aligned buffer for an O_DIRECT landing, or None to land buffered."""
        if not self.root.direct_possible:
            return None
        if not self._land_direct and not (
            self.settings.direct_io == "auto" and self.root.page_cache.skip()
        ):
            return None
        if self._stage is None:
            self._stage = direct.STAGES.take()
        return self._stage

    def _receive_body(self, landing: FileLanding, size: int) -> None:
        """Take a file's body: what the inbox holds already, then, for a landing with
        O_DIRECT, straight into its aligned stage (a user-space copy of every byte was 22 %
        of a receiver's CPU in a bulk run with --direct-io always)."""
        pace = _BodyPace(self.settings.io_timeout)
        remaining = size
        while remaining:
            room = None if self.inbox.buffered else landing.receive_room(remaining)
            if room is None:
                chunk = self.inbox.take(remaining)
                landing.write(chunk)
                got = len(chunk)
            else:
                got = self.inbox.receive_into(room)
                landing.received(room[:got])
            pace.add(got)
            remaining -= got
        if landing.direct:
            # The next header's receive takes little of the next body, which would otherwise
            # be copied into the stage (until the header is whole: `_take_names`).
            self.inbox.fill_limit = DIRECT_HEADER_FILL

    def _drain(self, size: int) -> None:
        pace = _BodyPace(self.settings.io_timeout)
        for chunk in self.inbox.chunks(size):
            pace.add(len(chunk))

    def _refuse(self, fixed: FixedHeader, name: str, status: Status, message: str) -> Reply:
        if status.retryable:  # the sender sends it again, on this connection if it stays up
            self._may_come_again.add(name)
        self.counters.add(errors=1)
        if self._metrics:
            self._metrics.receive_failures.labels(self._camera, status.name.lower()).inc()
        log.warning(
            "%s: %s refused: %s",
            self.peer,
            name,
            message,
            extra={"event": "file_failed", "peer": self.peer, "file": name, "reason": message},
        )
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
