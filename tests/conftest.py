"""Shared fixtures: free ports, real receiver processes, real senders, real frame folders.

Receivers run as `python -m camxfer recv` subprocesses; a fixture owns each one and stops it by
pid (SIGTERM, then SIGKILL for it and any worker it left) whatever the test did. Frames are
random bytes framed like a JPEG (FF D8 ... FF D9), so every transfer can be checked by hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEMP_PREFIX = ".camxfer-tmp-"
MANIFEST_NAME = ".camxfer-manifest.json"  # a run's manifest, checked by test_manifest.py


# --- small helpers -------------------------------------------------------------------------------
def checksum(data: bytes) -> bytes:
    """The wire checksum (XXH3-128) of `data`, as a sender declares it."""
    from camxfer.protocol import new_hasher  # here: conftest loads no camxfer module itself

    hasher = new_hasher()
    hasher.update(data)
    return hasher.digest()


def free_port() -> int:
    """A TCP port nothing listens on right now (bind port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str, step: float = 0.02):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every regular file under `root` (temporaries included,
    the receiver's manifests left out)."""
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.name != MANIFEST_NAME
    }


def temps_under(root: Path) -> list[Path]:
    """The receivers' temporaries under `root`: named ones, and unnamed (O_TMPFILE) files a
    process holds open there."""
    return [*root.rglob(f"{TEMP_PREFIX}*"), *(Path(link) for _pid, link in unnamed_files(root))]


def unnamed_files(root: Path, pids: list[int] | None = None) -> list[tuple[int, str]]:
    """(pid, link) of every unnamed file in a folder under `root` held open by `pids` (default:
    any process). Its /proc/<pid>/fd link reads '<folder>/#<inode> (deleted)'."""
    prefix = f"{root.resolve()}/"
    found = []
    for pid in pids if pids is not None else [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or not ours to look at
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            name = link.rpartition("/")[2]
            if link.startswith(prefix) and name.startswith("#") and name.endswith(" (deleted)"):
                found.append((pid, link))
    return found


def frame_bytes(size: int, seed: int) -> bytes:
    """`size` bytes looking like a JPEG (SOI ... EOI); the middle is deterministic per seed."""
    body = hashlib.shake_256(seed.to_bytes(8, "big")).digest(max(size - 4, 0))
    return (b"\xff\xd8" + body + b"\xff\xd9")[:size] if size >= 4 else body[:size]


def frame_name(number: int, camera: str = "camera01") -> str:
    return f"frame_{camera}_{number:09d}.jpg"


def make_frames(
    folder: Path,
    count: int,
    *,
    size: int = 4096,
    first: int = 1,
    camera: str = "camera01",
    random_bytes: bool = True,
    age: float = 5.0,
) -> list[Path]:
    """Write `count` numbered frames into `folder`; returns their paths in order.

    The frames are a backlog written `age` seconds ago (mtime set back), as the frames in a
    ring buffer are by the time a sender is asked for them; age=0 leaves them fresh.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    mtime = time.time() - age
    for number in range(first, first + count):
        path = folder / frame_name(number, camera)
        data = (
            b"\xff\xd8" + os.urandom(max(size - 4, 0)) + b"\xff\xd9"
            if random_bytes
            else frame_bytes(size, number)
        )
        path.write_bytes(data)
        if age:
            os.utime(path, (mtime, mtime))
        paths.append(path)
    return paths


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (no psutil)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children.extend(int(c) for c in (task / "children").read_text().split())
    return sorted(set(children))


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# --- receivers -----------------------------------------------------------------------------------
@dataclass
class Receiver:
    """A running `camxfer recv` process and what it was started with."""

    process: subprocess.Popen
    port: int
    out_dir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        return child_pids(self.pid)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the receiver, wait, then SIGKILL it and any worker left behind."""
        leftovers = self.workers()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(5)
        for pid in leftovers:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return self.process.returncode


def start_receiver(
    out_dir: Path,
    *args: str,
    port: int | None = None,
    log_dir: Path,
    ready_timeout: float = 20.0,
    default_out_dir: bool = False,
) -> Receiver:
    """Start `camxfer recv` on 127.0.0.1 and return once it logged that it is listening.

    With `default_out_dir`, no --out-dir is given and the receiver runs in `out_dir`.
    """
    port = port or free_port()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"recv-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "camxfer",
        "recv",
        "--listen-ip",
        "127.0.0.1",
        "--port",
        str(port),
        *([] if default_out_dir else ["--out-dir", str(out_dir)]),
        *args,
    ]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            cmd,
            cwd=out_dir if default_out_dir else REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    receiver = Receiver(process, port, out_dir, log_path, list(args))

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"receiver exited with {process.returncode}:\n{receiver.log()}")
        if "listening on" not in receiver.log():
            return False
        with socket.socket() as probe:
            probe.settimeout(1.0)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(ready, ready_timeout, f"the receiver on port {port}", step=0.05)
    except BaseException:
        receiver.stop()
        raise
    return receiver


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    """`receivers(out_dir, *args)` starts a receiver; all are stopped by pid at teardown."""
    started: list[Receiver] = []

    def start(
        out_dir: Path | None = None,
        *args: str,
        port: int | None = None,
        default_out_dir: bool = False,
    ) -> Receiver:
        receiver = start_receiver(
            out_dir or tmp_path / "out",
            *args,
            port=port,
            log_dir=tmp_path / "logs",
            default_out_dir=default_out_dir,
        )
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


# --- senders -------------------------------------------------------------------------------------
def send_command(src: Path, port: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "camxfer",
        "send",
        "--src-dir",
        str(src),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]


@dataclass
class SendResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stats(self) -> dict:
        """The --json-stats object (the last line of stdout)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"no JSON stats on stdout; stderr:\n{self.stderr}"
        return json.loads(lines[-1])


def run_sender(src: Path, port: int, *args: str, timeout: float = 60.0) -> SendResult:
    """Run `camxfer send` to completion (the timeout is a hang guard, not a speed check)."""
    done = subprocess.run(
        send_command(src, port, *args),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return SendResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def senders() -> Iterator[Callable[..., subprocess.Popen]]:
    """`senders(src, port, *args)` starts a background sender; killed by pid at teardown."""
    started: list[subprocess.Popen] = []

    def start(src: Path, port: int, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            send_command(src, port, *args),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            process.communicate(timeout=10)


def finish_sender(process: subprocess.Popen, timeout: float = 60.0) -> SendResult:
    stdout, stderr = process.communicate(timeout=timeout)
    return SendResult(process.returncode, stdout, stderr)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder
