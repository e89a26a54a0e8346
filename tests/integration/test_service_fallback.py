"""`camxfer service`: the no-systemd service manager the Ansible roles use on these machines.

Real processes: a `camxfer recv` started as a named service, found again by its pid file,
left alone by a second start, restarted, stopped; a command that dies at once, or never
opens its port, is reported with the end of its log instead of being called started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CAMXFER = [sys.executable, "-m", "camxfer"]
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CAMXFER, "service", *args], capture_output=True, text=True, env=ENV, timeout=60
    )


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    run_dir, log_dir = tmp_path / "run", tmp_path / "log"
    yield run_dir, log_dir
    for pid_file in run_dir.glob("*.pid"):  # whatever a failing test left running
        with contextlib.suppress(ValueError, OSError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def recv_command(port: int, out: Path) -> list[str]:
    return [
        *CAMXFER,
        "recv",
        "--listen-ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--out-dir",
        str(out),
    ]


def test_start_status_restart_stop(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, log_dir = dirs
    port = free_port()
    where = ["--run-dir", str(run_dir), "--log-dir", str(log_dir)]
    command = recv_command(port, tmp_path)

    started = service("start", "rx", *where, "--ready-port", f"127.0.0.1:{port}", "--", *command)
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)
    assert first["changed"] is True and first["running"] is True
    assert first["command"] == command
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # --ready-port: it accepts connections once start returns
    assert (run_dir / "rx.pid").read_text().strip() == str(first["pid"])
    assert first["log_file"] == str(log_dir / "rx.log")

    again = json.loads(service("start", "rx", *where, "--", *command).stdout)
    assert again["changed"] is False and again["pid"] == first["pid"]

    other = json.loads(service("start", "rx", *where, "--", *command, "--workers", "2").stdout)
    assert other["changed"] is False and "use restart" in other["note"]

    status = service("status", "rx", *where)
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == first["pid"]

    restarted = json.loads(service("restart", "rx", *where, "--", *command).stdout)
    assert restarted["changed"] is True and restarted["pid"] != first["pid"]
    assert not Path(f"/proc/{first['pid']}").exists() or _is_zombie(first["pid"])

    stopped = json.loads(service("stop", "rx", *where).stdout)
    assert stopped["changed"] is True and stopped["running"] is False
    assert not (run_dir / "rx.pid").exists()
    status = service("status", "rx", *where)
    assert status.returncode == 3 and json.loads(status.stdout)["running"] is False
    assert json.loads(service("stop", "rx", *where).stdout)["changed"] is False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_a_command_that_dies_at_once_is_not_started(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    run_dir, log_dir = dirs
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = service(
            "start",
            "rx",
            "--run-dir",
            str(run_dir),
            "--log-dir",
            str(log_dir),
            "--",
            *recv_command(port, tmp_path),
        )
    assert result.returncode == 1
    assert "service rx exited right after starting" in result.stderr
    assert "Address already in use" in result.stderr  # the end of its log
    assert not (run_dir / "rx.pid").exists()


def test_a_port_that_never_opens_fails_the_start(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = dirs
    port, never = free_port(), free_port()
    result = service(
        "start",
        "rx",
        "--run-dir",
        str(run_dir),
        "--ready-port",
        f"127.0.0.1:{never}",
        "--ready-timeout",
        "2",
        "--",
        *recv_command(port, tmp_path),
    )
    assert result.returncode == 1
    assert f"127.0.0.1:{never} accepted no connection within 2 s" in result.stderr
    assert service("stop", "rx", "--run-dir", str(run_dir)).returncode == 0


def test_usage_errors_are_one_line(dirs: tuple[Path, Path]) -> None:
    run_dir, _ = dirs
    no_command = service("start", "rx", "--run-dir", str(run_dir))
    assert no_command.returncode == 2 and "needs the command to run" in no_command.stderr
    bad_name = service("status", "../rx", "--run-dir", str(run_dir))
    assert bad_name.returncode == 2 and "is not allowed" in bad_name.stderr
    bad_port = service("start", "rx", "--run-dir", str(run_dir), "--ready-port", "nope", "--", "x")
    assert bad_port.returncode == 2 and "is not HOST:PORT" in bad_port.stderr
