"""The receiver process: listening sockets, worker processes, and their supervision.

`serve()` runs `workers` processes that accept connections on one port: each binds its own
SO_REUSEPORT socket when asked (the kernel spreads connections), otherwise they share one
listening socket made by the parent. Each worker runs one thread per connection, so one
worker can serve several persistent sender connections at once. The parent restarts a worker
that dies and removes any named temporaries it left (unnamed ones die with it); SIGINT/SIGTERM
stop everything gracefully.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from camxfer import metrics
from camxfer.auth import FailureCounter
from camxfer.errors import TransferError
from camxfer.recv.landing import LandingRoot, remove_stale_temps
from camxfer.recv.session import ReceiverSettings, Session, SessionCounters
from camxfer.sockets import set_dead_peer_detection
from camxfer.tls import server_context

log = logging.getLogger("camxfer.recv")

STOP_GRACE_SECONDS = 10.0  # how long in-flight files may take to finish on shutdown


# `camxfer recv` without --workers: a process per CPU, up to this many. Each connection is a
# thread of its worker, and threads of one process hand the GIL to each other at every system
# call: eight connections into one worker took 11,000 context switches per 1,000 small frames
# (1,900 with four workers) and a fifth longer (docs/performance-history.md).
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """The worker count `camxfer recv` starts when not told: one per CPU it may run on, at
    most MAX_DEFAULT_WORKERS."""
    return max(1, min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class ListenSettings:
    listen_ip: str = "0.0.0.0"
    port: int = 0
    workers: int = 1  # 1: served in the calling process, no worker processes
    reuseport: bool = False
    max_connections: int = 256  # per worker; more are closed at once
    backlog: int = 128


def open_listener(listen: ListenSettings, *, reuseport: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.listen_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((listen.listen_ip, listen.port))
        sock.listen(listen.backlog)
    except OSError as exc:
        sock.close()
        raise TransferError(
            f"cannot listen on {listen.listen_ip}:{listen.port}: {exc.strerror or exc}"
            + _LISTEN_HINTS.get(exc.errno, "")
        ) from exc
    return sock


_UNLIMITED_FILES = 1 << 20  # the kernel's default nr_open: the most a process may open


def raise_open_file_limit() -> None:
    """Lift this process's soft limit on open files to its hard limit.

    Each file a session has received and not yet acknowledged keeps its unnamed file open
    until the group commit, up to a sender's --window (32 by default) per connection, so a
    worker serving many connections needs more than the usual soft limit of 1,024. The hard
    limit is what the administrator allows; workers inherit the raised limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else _UNLIMITED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # Above the kernel's nr_open it fails: the receiver keeps the limit it has.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# What to do about the usual reasons a listening socket cannot be made (keyed by an OSError's
# errno, which may be None).
_LISTEN_HINTS: dict[int | None, str] = {
    errno.EADDRINUSE: "; another process listens there (another receiver?): stop it or "
    "choose another --port",
    errno.EADDRNOTAVAIL: "; that address is not one of this host's: check --listen-ip",
    errno.EACCES: "; ports below 1024 need root: choose a port of 1024 or more",
}


class Worker:
    """Accepts connections and runs a session thread for each, until told to stop."""

    def __init__(self, listener: socket.socket, settings: ReceiverSettings, listen: ListenSettings):
        self.listener = listener
        self.settings = settings
        self.listen = listen
        self.stop = threading.Event()
        self.counters = SessionCounters()
        self.auth_failures = FailureCounter()  # per peer address, across this worker's sessions
        self.tls = server_context(settings.tls) if settings.tls is not None else None
        self._sessions: dict[threading.Thread, Session] = {}
        self._lock = threading.Lock()

    def run(self) -> None:
        root = LandingRoot(self.settings.out_dir, overwrite=self.settings.overwrite)
        self.listener.settimeout(0.2)  # wake up to notice a stop request
        try:
            while not self.stop.is_set():
                try:
                    conn, addr = self.listener.accept()
                except TimeoutError:
                    continue
                except OSError as exc:
                    if self.stop.is_set():
                        break
                    log.warning("accept failed: %s", exc)
                    time.sleep(0.05)
                    continue
                self._start_session(conn, addr, root)
        finally:
            self.listener.close()
            self._stop_sessions()
            removed = root.remove_active_temps()
            if removed:
                log.info("removed %d unfinished temporary files", removed)
            root.close()

    def _start_session(self, conn: socket.socket, addr: tuple, root: LandingRoot) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        with self._lock:
            self._sessions = {t: s for t, s in self._sessions.items() if t.is_alive()}
            if len(self._sessions) >= self.listen.max_connections:
                log.warning("%s: refused, %d connections already open", peer, len(self._sessions))
                conn.close()
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A sender whose link died would hold its slot until --idle-timeout (600 s).
            set_dead_peer_detection(conn, self.settings.io_timeout)
            session = Session(
                conn, peer, root, self.settings, self.counters, self.auth_failures, self.tls
            )
            thread = threading.Thread(target=session.run, name=f"session-{peer}", daemon=True)
            self._sessions[thread] = session
        thread.start()

    def _stop_sessions(self) -> None:
        with self._lock:
            sessions = dict(self._sessions)
        # Idle connections are closed now; ones inside a file get the grace period to finish
        # that file (and take no further one).
        for session in sessions.values():
            session.stopping = True
        for session in sessions.values():
            if not session.busy:
                with contextlib.suppress(OSError):
                    session.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for thread, session in sessions.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with contextlib.suppress(OSError):
                    session.sock.shutdown(socket.SHUT_RDWR)
                thread.join(1.0)


def _worker_main(
    shared_listener: socket.socket | None,
    settings: ReceiverSettings,
    listen: ListenSettings,
    ready: multiprocessing.synchronize.Event | None,
) -> None:
    listener = shared_listener or open_listener(listen, reuseport=True)
    worker = Worker(listener, settings, listen)

    def request_stop(_signum: int, _frame: object) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    threading.Thread(target=_stop_when_orphaned, args=(worker,), daemon=True).start()
    if ready is not None:
        ready.set()
    worker.run()


def _stop_when_orphaned(worker: Worker) -> None:
    """Stop the worker if the receiver process dies (kill -9 sends it no signal): an orphaned
    worker would keep the port, and a restarted receiver could not bind it."""
    parent = os.getppid()
    while not worker.stop.wait(0.5):
        if os.getppid() != parent:
            log.warning("the receiver process is gone; worker stopping")
            worker.stop.set()


class ReceiverServer:
    """Runs and supervises the worker processes of one receiver."""

    def __init__(self, settings: ReceiverSettings, listen: ListenSettings) -> None:
        self.settings = settings
        self.listen = listen
        self.stop = threading.Event()
        self._ctx = multiprocessing.get_context("fork")
        self._shared: socket.socket | None = None
        self.restarts = 0

    def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        self.settings.out_dir.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temps(self.settings.out_dir)
        if removed:
            log.info("removed %d temporary files left by a previous receiver", removed)
        if self.listen.workers == 1 and not self.listen.reuseport:
            self._serve_in_process(on_ready)
            return
        if not self.listen.reuseport:
            self._shared = open_listener(self.listen, reuseport=False)
        else:
            # Bind once here so a port in use is reported before any worker starts. Without
            # SO_REUSEPORT: with it, the bind would also succeed next to another receiver's
            # SO_REUSEPORT sockets (any process of the same user may join the group), and
            # the two would silently split the connections between their folders.
            open_listener(self.listen, reuseport=False).close()
        workers = [self._start_worker() for _ in range(self.listen.workers)]
        if on_ready:
            on_ready()
        try:
            self._supervise(workers)
        finally:
            self._stop_workers(workers)
            if self._shared:
                self._shared.close()

    def _serve_in_process(self, on_ready: Callable[[], None] | None) -> None:
        worker = Worker(open_listener(self.listen, reuseport=False), self.settings, self.listen)

        def stop_worker() -> None:
            self.stop.wait()
            worker.stop.set()

        threading.Thread(target=stop_worker, daemon=True).start()
        if on_ready:
            on_ready()
        worker.run()

    def _start_worker(self) -> BaseProcess:
        ready = self._ctx.Event()
        process = self._ctx.Process(
            target=_worker_main,
            args=(self._shared, self.settings, self.listen, ready),
            name="camxfer-recv-worker",
            daemon=False,
        )
        process.start()
        ready.wait(10)
        return process

    def _supervise(self, workers: list[BaseProcess]) -> None:
        backoff = 0.1
        while not self.stop.is_set():
            ready = wait([p.sentinel for p in workers], timeout=0.2)
            if not ready or self.stop.is_set():
                continue
            for index, process in enumerate(workers):
                if process.exitcode is None:
                    continue
                removed = remove_stale_temps(self.settings.out_dir, only_pids={_pid(process)})
                self.restarts += 1
                if (recorder := metrics.recorder()) is not None:
                    recorder.worker_restarts.inc()
                log.warning(
                    "worker %d (pid %d) died with status %s; removed %d temporaries; "
                    "restarting (restart #%d)",
                    index,
                    process.pid,
                    process.exitcode,
                    removed,
                    self.restarts,
                    extra={
                        "event": "worker_restarted",
                        "worker": index,
                        "restarts": self.restarts,
                        "reason": f"exit status {process.exitcode}",
                    },
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                workers[index] = self._start_worker()

    def _stop_workers(self, workers: list[BaseProcess]) -> None:
        for process in workers:
            if process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(_pid(process), signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS + 2
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join(2)
                remove_stale_temps(self.settings.out_dir, only_pids={_pid(process)})


def _pid(process: BaseProcess) -> int:
    """A worker's pid: None only before start(), and `_start_worker` starts each one."""
    pid = process.pid
    assert pid is not None
    return pid
