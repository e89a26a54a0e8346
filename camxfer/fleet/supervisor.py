"""Keep a set of child processes running: restart the ones that die, stop all on request.

Used by `camxfer receivers` (one receiver process per camera). A child that exits is
restarted after a backoff that doubles up to 30 s and resets once the child has stayed up a
minute; every restart is logged with its count. `stop()` sends SIGTERM, waits, then SIGKILLs.

Each child leads its own process group, and whatever is left of that group when the child is
gone is killed: a receiver killed with SIGKILL leaves its worker processes running, still
holding its listening socket, and its replacement could never bind the port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("camxfer.fleet")

STABLE_AFTER_S = 60.0
MAX_BACKOFF_S = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = 0.5
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)  # exit codes seen
    tag: str = ""  # what metrics call this child (its camera, for receivers)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, process_group=0)
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def kill_leftovers(self) -> None:
        """SIGKILL what remains of the child's process group once the child itself is gone."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


class Supervisor:
    def __init__(
        self, children: list[Child], *, on_restart: Callable[[Child], None] | None = None
    ) -> None:
        self.children = children
        self.stop_event = threading.Event()
        self.on_restart = on_restart  # e.g. count restarts in the metrics

    def run(self, poll_s: float = 0.2) -> None:
        for child in self.children:
            child.start()
            log.info("started %s (pid %d)", child.name, child.pid)
        while not self.stop_event.wait(poll_s):
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)
        self.stop()

    def _check(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                child.start()
                if self.on_restart is not None:
                    self.on_restart(child)
                log.warning(
                    "restarted %s (pid %d), restart #%d",
                    child.name,
                    child.pid,
                    child.restarts,
                    extra={"event": "service_restarted", "restarts": child.restarts},
                )
            return
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            if now - child.started_at > STABLE_AFTER_S:
                child.backoff = 0.5
            return
        child.history.append(code)
        child.kill_leftovers()
        child.restart_at = now + child.backoff
        log.warning(
            "%s (pid %d) exited with status %d; restarting in %.1f s",
            child.name,
            child.process.pid,
            code,
            child.backoff,
            extra={"event": "service_exited", "reason": f"exit status {code}"},
        )
        child.backoff = min(child.backoff * 2, MAX_BACKOFF_S)

    def stop(self, grace_s: float = 15.0) -> None:
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(5)
            child.kill_leftovers()
