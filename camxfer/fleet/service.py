"""A tiny service manager for machines without systemd: start, stop, restart, status by name.

Responsible for: running one long-lived camxfer command per service name in its own session,
with a pid file in a run folder and a log file in a log folder (through `detached`), the
command it was started with (so `status` can show it), noticing a service that dies right
after starting, and stopping it with SIGTERM, then SIGKILL to its whole process group.
Not responsible for: restarting services that die later (`camxfer receivers` supervises its
own children), boot-time start, or anything systemd would do on a machine that has it; the
Ansible roles use systemd there and this only where systemd does not run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camxfer.errors import CamxferError, UsageError
from camxfer.fleet import detached

SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
LOG_TAIL_LINES = 15


class ServiceError(CamxferError):
    """A service could not be started or stopped."""


@dataclass(frozen=True)
class ServiceState:
    """What is known about one service: whether it runs, its pid and its files."""

    name: str
    running: bool
    pid: int | None
    pid_file: Path
    log_file: Path
    command: list[str] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "running": self.running,
            "pid": self.pid if self.running else None,
            "pid_file": str(self.pid_file),
            "log_file": str(self.log_file),
            "command": self.command,
        }


@dataclass(frozen=True)
class ServiceResult:
    """The outcome of start/stop/restart: whether anything changed, and the state after."""

    action: str
    changed: bool
    state: ServiceState
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        result = {"action": self.action, "changed": self.changed, **self.state.to_json()}
        if self.note:
            result["note"] = self.note
        return result


def check_name(name: str) -> str:
    if not SERVICE_NAME.fullmatch(name):
        raise UsageError(
            f"service name {name!r} is not allowed; use 1 to 64 letters, digits, '_', '-', '.' "
            "or '@', starting with a letter or digit."
        )
    return name


class ServiceManager:
    """Services whose pid files live in `run_dir` and whose logs live in `log_dir`."""

    def __init__(
        self,
        run_dir: Path,
        log_dir: Path | None = None,
        *,
        settle_s: float = 1.0,
        grace_s: float = 15.0,
        ready_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.run_dir
        self.settle_s = settle_s
        self.grace_s = grace_s
        self.ready_s = ready_s
        self._sleep = sleep
        self._clock = clock

    def _command_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.cmd.json"

    def status(self, name: str) -> ServiceState:
        info = detached.status(self.run_dir, check_name(name), log_dir=self.log_dir)
        try:
            command = json.loads(self._command_file(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            command = None
        return ServiceState(
            name=name,
            running=info.running,
            pid=info.pid,
            pid_file=info.pid_file,
            log_file=info.log_file,
            command=command if isinstance(command, list) else None,
        )

    def start(
        self, name: str, argv: Sequence[str], *, ready: Sequence[tuple[str, int]] = ()
    ) -> ServiceResult:
        """Start `argv` as service `name` unless it already runs (then nothing changes).

        With `ready` (host, port) pairs, return only once each accepts TCP connections (a
        ServiceError after `ready_s` seconds), so callers need not poll the ports themselves.
        """
        check_name(name)
        if not argv:
            raise UsageError(f"no command given for service {name}; put it after '--'.")
        current = self.status(name)
        if current.running:
            note = ""
            if current.command is not None and current.command != list(argv):
                note = "running with a different command; use restart to apply the new one"
            return ServiceResult("start", False, current, note)
        try:
            info = detached.start(self.run_dir, name, list(argv), log_dir=self.log_dir)
        except OSError as exc:
            raise ServiceError(
                f"cannot start service {name} ({argv[0]}): {exc.strerror or exc}."
            ) from None
        self._write_command(name, argv)
        assert info.pid is not None
        self._settle(name, info.pid, info.log_file)
        self._wait_ready(name, info.pid, info.log_file, ready)
        return ServiceResult("start", True, self.status(name))

    def stop(self, name: str) -> ServiceResult:
        """Stop service `name`: SIGTERM, then after the grace time SIGKILL to its process group."""
        current = self.status(name)
        if current.running and current.pid is not None:
            pid = current.pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = self._clock() + self.grace_s
            while self._clock() < deadline and self.status(name).running:
                self._sleep(0.1)
            # The service leads its own session and process group (detached starts it with
            # setsid), so the group holds exactly the processes it started.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        current.pid_file.unlink(missing_ok=True)
        return ServiceResult("stop", current.running, self.status(name))

    def restart(
        self, name: str, argv: Sequence[str], *, ready: Sequence[tuple[str, int]] = ()
    ) -> ServiceResult:
        self.stop(name)
        started = self.start(name, argv, ready=ready)
        return ServiceResult("restart", True, started.state, started.note)

    def _write_command(self, name: str, argv: Sequence[str]) -> None:
        path = self._command_file(name)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(list(argv)) + "\n", encoding="utf-8")
        temp.replace(path)

    def _settle(self, name: str, pid: int, log_file: Path) -> None:
        """Fail clearly if the service exits within `settle_s` (bad config, port in use, ...)."""
        deadline = self._clock() + self.settle_s
        while True:
            exited, status = _reap(pid)
            if exited:
                self.status(name).pid_file.unlink(missing_ok=True)
                self._command_file(name).unlink(missing_ok=True)
                raise ServiceError(
                    f"service {name} exited right after starting ({_describe(status)}); "
                    f"last lines of {log_file}:\n{_tail(log_file)}"
                )
            if self._clock() >= deadline:
                return
            self._sleep(0.05)

    def _wait_ready(
        self, name: str, pid: int, log_file: Path, ready: Sequence[tuple[str, int]]
    ) -> None:
        waiting = list(ready)
        deadline = self._clock() + self.ready_s
        while waiting:
            waiting = [(host, port) for host, port in waiting if not _accepts(host, port)]
            if not waiting:
                return
            exited, status = _reap(pid)
            if exited:
                self.status(name).pid_file.unlink(missing_ok=True)
                raise ServiceError(
                    f"service {name} exited while starting ({_describe(status)}); "
                    f"last lines of {log_file}:\n{_tail(log_file)}"
                )
            if self._clock() >= deadline:
                ports = ", ".join(f"{host}:{port}" for host, port in waiting)
                raise ServiceError(
                    f"service {name} runs (pid {pid}) but {ports} accepted no connection within "
                    f"{self.ready_s:g} s; last lines of {log_file}:\n{_tail(log_file)}"
                )
            self._sleep(0.1)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def parse_endpoint(text: str) -> tuple[str, int]:
    """'10.0.0.21:50001' -> ('10.0.0.21', 50001), with a clear error for anything else."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:50001).")
    return host.strip("[]"), int(port)


def _reap(pid: int) -> tuple[bool, int]:
    """(exited, wait status) of our own child `pid`, without blocking."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False, 0  # not our child (cannot happen right after start); assume it runs
    return done == pid, status


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read the log: {exc.strerror or exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"
