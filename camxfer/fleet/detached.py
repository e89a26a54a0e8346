"""Background processes with a pid file and a log file each: start, list, stop.

Used by `camxfer senders --detach` (and wherever there is no systemd to run a service). The
pid file holds the pid; before signalling it, the process's command line is checked to still
be ours, so a pid reused by an unrelated process is never killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

EXEC_WAIT_S = 5.0  # longest wait, at start, for /proc to show the started program


@dataclass(frozen=True)
class Detached:
    name: str
    pid: int | None
    running: bool
    pid_file: Path
    log_file: Path


def _paths(run_dir: Path, name: str, log_dir: Path | None = None) -> tuple[Path, Path]:
    return run_dir / f"{name}.pid", (log_dir or run_dir) / f"{name}.log"


def start(run_dir: Path, name: str, argv: list[str], *, log_dir: Path | None = None) -> Detached:
    """Start `argv` in its own session unless `name` already runs; the log goes to `log_dir`
    (default: `run_dir`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    pid_file, log_file = _paths(run_dir, name, log_dir)
    current = status(run_dir, name, log_dir=log_dir)
    if current.running:
        return current
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the terminal closing; not in our process group
        )
    # Popen can return before /proc shows the new program's command line (seen on a loaded
    # machine), and `status` recognises our processes by it: wait for it, briefly.
    deadline = time.monotonic() + EXEC_WAIT_S
    while not _is_ours(process.pid) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    temp = pid_file.with_suffix(".pid.tmp")
    temp.write_text(f"{process.pid}\n")
    temp.replace(pid_file)
    return Detached(name, process.pid, True, pid_file, log_file)


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"camxfer" in cmdline


def _started_after(pid: int, when: float) -> bool:
    """Did process `pid` start after wall-clock time `when`? (Then it reused an old pid.)"""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, ValueError, StopIteration):
        return False
    # A little slack: btime is whole seconds and the pid file is written just after the start.
    return boot + ticks / os.sysconf("SC_CLK_TCK") > when + 2.0


def status(run_dir: Path, name: str, *, log_dir: Path | None = None) -> Detached:
    pid_file, log_file = _paths(run_dir, name, log_dir)
    try:
        pid = int(pid_file.read_text().strip())
        written = pid_file.stat().st_mtime
    except (OSError, ValueError):
        return Detached(name, None, False, pid_file, log_file)
    # A pid file outlives its process; the pid may since belong to another process, even
    # another camxfer one. It is ours only if that process is not younger than the file.
    running = _is_ours(pid) and not _is_zombie(pid) and not _started_after(pid, written)
    return Detached(name, pid, running, pid_file, log_file)


def _is_zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] == "Z"


def list_all(run_dir: Path) -> list[Detached]:
    if not run_dir.is_dir():
        return []
    return [status(run_dir, p.stem) for p in sorted(run_dir.glob("*.pid"))]


def stop(run_dir: Path, name: str, *, grace_s: float = 15.0) -> Detached:
    current = status(run_dir, name)
    if current.running and current.pid is not None:
        os.kill(current.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and status(run_dir, name).running:
            time.sleep(0.1)
        if status(run_dir, name).running:
            os.kill(current.pid, signal.SIGKILL)
    current.pid_file.unlink(missing_ok=True)
    return status(run_dir, name)
