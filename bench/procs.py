"""Processes the benchmark starts: launch, wait with resource usage, stop by pid, find ports.

Responsible for: every child process of the harness (each in its own session, so stopping it
reaches the worker processes it forked and nothing else), its output in log files, its CPU
time from wait4(2) (for a process that reaps its children, e.g. a receiver and its workers
or `sh -c 'a | b'`, the kernel adds theirs) and its peak RSS from /proc VmHWM. Also free
ports and "is this port listening yet" (asked with `ss` inside the receiver's network
namespace, so no probe connection ever reaches the program under test).
Not responsible for: what the processes are (the contender modules) or timing a transfer.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_LIVE: dict[int, Proc] = {}


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


@dataclass(frozen=True)
class Exit:
    returncode: int
    cpu_s: float  # user + system, including reaped children
    # ru_maxrss: NOT the child's own peak - Linux carries the parent's high-water mark into a
    # forked child's; use Proc.wait_watching_memory for peak RSS.
    maxrss_kib: int


class Proc:
    """One child process, in its own session, with stdout/stderr in `logs/label.{out,err}`.

    It runs in `cwd`, by default the folder holding `logs` (the work directory): never in
    the caller's folder, where `python -m camxfer` would import a camxfer/ found there
    before the one on PYTHONPATH (--camxfer-src) or the installed one.
    """

    def __init__(
        self,
        argv: Sequence[str],
        logs: Path,
        label: str,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.argv = list(argv)
        self.out_path = logs / f"{label}.out"
        self.err_path = logs / f"{label}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd or logs.parent,
                env=env,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self._pidfd = os.pidfd_open(self.pid)
        self.exit: Exit | None = None
        self.started = time.perf_counter()
        _LIVE[self.pid] = self

    def running(self) -> bool:
        if self.exit is not None:
            return False
        ready, _, _ = select.select([self._pidfd], [], [], 0)
        return not ready

    def wait(self, timeout: float) -> Exit:
        """Wait for the process to end; raises TimeoutError if it does not within `timeout`."""
        if self.exit is not None:
            return self.exit
        ready, _, _ = select.select([self._pidfd], [], [], max(timeout, 0.0))
        if not ready:
            raise TimeoutError(f"{self.label} (pid {self.pid}) still running after {timeout:g} s")
        _pid, status, usage = os.wait4(self.pid, 0)
        os.close(self._pidfd)
        code = os.waitstatus_to_exitcode(status)
        self.popen.returncode = code  # reaped here; keep Popen from waiting again
        self.exit = Exit(code, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
        _LIVE.pop(self.pid, None)
        return self.exit

    def wait_watching_memory(self, timeout: float, interval: float = 0.02) -> tuple[Exit, int]:
        """Wait like `wait`, sampling VmHWM meanwhile: (exit, peak RSS in KiB).

        wait4's ru_maxrss cannot be used for this: across fork + exec Linux carries the
        parent's high-water mark into the child's, so a child of a big harness looks big.
        VmHWM only rises, so the last sample misses at most `interval` of growth.
        """
        deadline = time.monotonic() + timeout
        peak = 0
        while True:
            peak = max(peak, vm_hwm_kib(self.pid))
            try:
                return self.wait(min(interval, max(deadline - time.monotonic(), 0.0))), peak
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def signal(self, signum: int) -> None:
        if self.exit is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)  # our session: the process and what it forked

    def stop(self, grace: float = 15.0) -> Exit:
        """SIGTERM the process group, then SIGKILL after `grace` seconds."""
        if self.exit is not None:
            return self.exit
        self.signal(signal.SIGTERM)
        try:
            return self.wait(grace)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            return self.wait(10.0)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr_tail(self, lines: int = 6) -> str:
        text = self.err_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def children(self) -> list[int]:
        """Pids of the direct children (e.g. a receiver's worker processes)."""
        return child_pids(self.pid)


def child_pids(pid: int) -> list[int]:
    """Pids of the direct children of `pid` (of any of its threads); none once it is gone."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.extend(int(child) for child in text.split())
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and every descendant alive now, with what each has
    reaped: for a long-running service, read before and after a transfer."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: its parent's reaped figures now hold it
        # Fields 14-17 of proc(5) (utime, stime, cutime, cstime); the name is cut off above.
        total += sum(int(value) for value in fields[11:15]) / ticks
        pending.extend(child_pids(current))
    return total


def stop_all() -> None:
    """Stop every process the harness started and has not reaped (on error or interrupt)."""
    for proc in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            proc.stop(grace=5.0)


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) of a running process, in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(
    port: int, proc: Proc, prefix: Sequence[str] = (), timeout: float = 20.0
) -> None:
    """Wait until something listens on TCP `port` (checked with `ss` under `prefix`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise BenchError(f"{proc.label} exited before listening: {proc.stderr_tail()}")
        listing = subprocess.run(
            [*prefix, "ss", "-Hltn", f"sport = :{port}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if listing.stdout.strip():
            return
        time.sleep(0.02)
    raise BenchError(f"{proc.label} not listening on port {port} after {timeout:g} s")


def run_checked(argv: Sequence[str], what: str) -> str:
    """Run a short command to completion; raise BenchError with its stderr if it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout
