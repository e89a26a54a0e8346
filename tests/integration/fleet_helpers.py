"""Shared pieces of the "fleet on one machine" tests: frames, config, ports, real processes.

Everything here is real: frames are files of random bytes in per-camera folders, the config is a
camera_config.json beside them, and `camxfer receivers` / `camxfer senders` run as subprocesses
on free loopback ports. Started processes are stopped by pid (SIGTERM, then SIGKILL), together
with any process they started that is still alive, so a failing test leaves nothing behind.
Not here: assertions; each test module says what it expects.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from camxfer.frames import frame_name

REPO = Path(__file__).resolve().parents[2]
CAMXFER = [sys.executable, "-m", "camxfer"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
TEMP_PREFIX = ".camxfer-tmp-"
MANIFEST_NAME = ".camxfer-manifest.json"  # each camera run's manifest (test_event_manifests.py)

T = TypeVar("T")


# --- waiting ---------------------------------------------------------------------------------
def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --- ports -----------------------------------------------------------------------------------
def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# --- frames and config -----------------------------------------------------------------------
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frame_bytes(camera: str, number: int) -> bytes:
    """A few hundred KiB of random bytes, the same for the same camera and number."""
    rng = random.Random(f"{camera}/{number}")
    return rng.randbytes(rng.randrange(200 * 1024, 400 * 1024))


def write_frames(folder: Path, camera: str, numbers: Iterator[int] | list[int] | range) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        (folder / frame_name(camera, number)).write_bytes(frame_bytes(camera, number))


@dataclass
class Layout:
    """A camera_config.json under `root` with one src and dest folder and one port per camera."""

    root: Path
    config: Path
    cameras: list[str]
    ports: dict[str, int]
    zmq_port: int
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)

    def src(self, camera: str) -> Path:
        return self.root / "src" / camera

    def dest(self, camera: str) -> Path:
        return self.root / self.raw[camera]["dest_path"]

    def landed(self, camera: str, *parts: str) -> Path:
        return self.dest(camera).joinpath(*parts, camera)


def make_layout(root: Path, cameras: list[str]) -> Layout:
    """Config with relative folders (resolved against the config's folder) and explicit ports.

    Each camera lands on its own disk folder, so a frame routed to the wrong receiver shows.
    """
    ports = free_ports(len(cameras) + 1)
    raw = {
        camera: {
            "src": f"src/{camera}",
            "dest_path": f"storage/disk{index + 1}",
            "port": ports[index],
        }
        for index, camera in enumerate(cameras)
    }
    config = root / "camera_config.json"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(raw, indent=2))
    for camera in cameras:
        (root / "src" / camera).mkdir(parents=True, exist_ok=True)
    return Layout(root, config, cameras, dict(zip(cameras, ports, strict=False)), ports[-1], raw)


def files_under(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones included, manifests left out): path -> sha256."""
    found = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name == MANIFEST_NAME:
                continue
            path = Path(dirpath, name)
            found[str(path.relative_to(folder))] = sha256(path)
    return found


def final_names(folder: Path) -> list[str]:
    """Names of the files below `folder` that are not receiver temporaries (safe mid-transfer)."""
    return sorted(
        name
        for _dirpath, _dirs, files in os.walk(folder)
        for name in files
        if not name.startswith(TEMP_PREFIX)
    )


# --- processes -------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/<pid>/task/*/children."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class Proc:
    """A started camxfer command whose stdout and stderr go to `log`."""

    name: str
    process: subprocess.Popen
    log: Path
    seen: set[int] = field(default_factory=set)  # every descendant pid ever noticed

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 15.0, count: int = 1) -> str:
        def found() -> bool:
            if self.process.poll() is not None and self.text().count(needle) < count:
                raise AssertionError(
                    f"{self.name} exited ({self.process.returncode}) before logging "
                    f"{needle!r}:\n{self.text()}"
                )
            return self.text().count(needle) >= count

        wait_for(found, timeout, f"{needle!r} in the log of {self.name}")
        return self.text()

    def remember_descendants(self) -> list[int]:
        pids = descendants(self.pid)
        self.seen.update(pids)
        return pids

    def stop(self, timeout: float = 25.0) -> int | None:
        """SIGTERM by pid, wait, SIGKILL if needed; then kill any descendant still alive."""
        if self.process.poll() is None:
            self.remember_descendants()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.remember_descendants()
                self.process.kill()
                self.process.wait(5)
        leftovers = [pid for pid in self.seen if alive(pid)]
        kill_pids(leftovers)
        return self.process.returncode


def receiver_pid(receivers: Proc, port: int) -> int:
    """The `camxfer recv` process that `camxfer receivers` runs for `port` (one worker)."""
    for pid in descendants(receivers.pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"--port" in argv and argv[argv.index(b"--port") + 1] == str(port).encode():
                return pid
    raise AssertionError(f"no receiver process for port {port}")


def start(name: str, args: list[str], log: Path, cwd: Path) -> Proc:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*CAMXFER, *args],
            cwd=cwd,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Proc(name, process, log)


def run(args: list[str], cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CAMXFER, *args],
        cwd=cwd,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def receivers(layout: Layout, *extra: str, workers: int = 2) -> Iterator[Proc]:
    """`camxfer receivers` for every camera of the layout, ready when each logs 'listening'."""
    proc = start(
        "camxfer receivers",
        ["receivers", "--config", str(layout.config), "--workers", str(workers), *extra],
        layout.root / "receivers.log",
        layout.root,
    )
    try:
        for camera in layout.cameras:
            proc.wait_log(f"listening on 127.0.0.1:{layout.ports[camera]}")
        proc.remember_descendants()
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def trigger_server(layout: Layout, *extra: str, timeout: float = 30.0) -> Iterator[Proc]:
    """`camxfer senders --zmq` for every camera of the layout, on loopback."""
    proc = start(
        "camxfer senders --zmq",
        [
            "senders",
            "--config",
            str(layout.config),
            "--zmq",
            "--zmq-bind",
            "127.0.0.1",
            "--zmq-port",
            str(layout.zmq_port),
            "--max-files",
            "10",
            "--frame-timeout",
            "1",
            "--timeout",
            str(timeout),
            *extra,
        ],
        layout.root / "senders.log",
        layout.root,
    )
    try:
        proc.wait_log("trigger server on")
        yield proc
    finally:
        proc.stop()
