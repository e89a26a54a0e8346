"""Live progress as an operator sees it: a bar on a terminal, plain lines in a log or a pipe.

`camxfer send` runs as a real process; for the bar its stderr is the slave side of a real
pseudo-terminal. stdout must stay clean for `--json-stats` whatever progress does.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
from pathlib import Path

import pytest
from fleet_helpers import CAMXFER, ENV, make_layout, run, trigger_server, write_frames
from fleet_helpers import receivers as receivers_of

from camxfer.frames import frame_name
from tests.conftest import REPO, make_frames, run_sender, send_command

pytestmark = pytest.mark.timeout(90)

LINE = re.compile(
    r"progress: (?:\S+: )?(?P<done>\d+)/(?P<expected>\d+) files, (?P<mb>\d+\.\d) MB, "
    r"(?P<rate>\d+\.\d) MB/s, ETA \S+, (?P<failed>\d+) failed"
)


def test_plain_progress_lines_when_stderr_is_not_a_terminal(receivers, tmp_path: Path) -> None:
    receiver = receivers(tmp_path / "out")
    frames = make_frames(tmp_path / "src", 40, size=50_000)
    result = run_sender(tmp_path / "src", receiver.port, "--once", "--progress-interval", "0")
    assert result.returncode == 0, result.stderr
    lines = [m for m in map(LINE.search, result.stderr.splitlines()) if m]
    assert lines, result.stderr
    last = lines[-1]
    assert (int(last["done"]), int(last["expected"]), int(last["failed"])) == (40, 40, 0)
    assert float(last["mb"]) == round(sum(p.stat().st_size for p in frames) / 1e6, 1)
    assert float(last["rate"]) > 0
    assert "\r" not in result.stderr  # no bar redraws in a log file
    assert result.stdout == ""


def test_json_stats_stay_alone_on_stdout_with_progress_lines(receivers, tmp_path: Path) -> None:
    receiver = receivers(tmp_path / "out")
    make_frames(tmp_path / "src", 12)
    quiet = run_sender(tmp_path / "src", receiver.port, "--once", "--json-stats")
    assert quiet.returncode == 0
    assert not LINE.search(quiet.stderr)  # auto: scripts asking for JSON get no progress
    assert json.loads(quiet.stdout)["files"] == 12

    make_frames(tmp_path / "src2", 12, camera="camera02")
    loud = run_sender(
        tmp_path / "src2",
        receiver.port,
        "--once",
        "--json-stats",
        "--progress",
        "lines",
        "--progress-interval",
        "0",
    )
    assert loud.returncode == 0, loud.stderr
    assert LINE.search(loud.stderr)
    assert len(loud.stdout.splitlines()) == 1
    assert json.loads(loud.stdout)["files"] == 12


def on_a_terminal(command: list[str], cwd: Path, env: dict | None = None) -> tuple[int, str, str]:
    """Run `command` with its stderr on a real pseudo-terminal; (exit code, what it drew on
    the terminal, its stdout)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, f"no terminal output for 60 s:\n{seen.decode(errors='replace')}"
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal's last writer
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        process.wait(30)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    return process.returncode, seen.decode("utf-8", errors="replace"), stdout


def test_progress_bar_on_a_terminal(receivers, tmp_path: Path) -> None:
    receiver = receivers(tmp_path / "out")
    make_frames(tmp_path / "src", 30, size=30_000)
    code, text, stdout = on_a_terminal(
        send_command(tmp_path / "src", receiver.port, "--once"), REPO
    )
    assert code == 0, text
    assert "\r" in text  # redrawn in place
    assert re.search(r"100%\|[^|]*\| 30/30 files", text), text
    assert re.search(r"\d+\.\d MB, \d+\.\d MB/s, 0 failed", text), text
    assert "sent 30 files" in text  # the summary log line still comes through, whole
    assert stdout == ""


def test_trigger_wait_draws_a_bar_on_a_terminal(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "fleet", ["cam01"])
    write_frames(layout.src("cam01"), "cam01", range(1, 15))
    with receivers_of(layout), trigger_server(layout):
        code, text, stdout = on_a_terminal(
            [
                *CAMXFER,
                "trigger",
                "--port",
                str(layout.zmq_port),
                "--frame-id",
                frame_name("cam01", 2),
                "--ball-id",
                "ball_t",
                "--wait",
            ],
            layout.root,
            ENV,
        )
    assert code == 0, text
    assert re.search(r"ball_t-2: 100%\|[^|]*\| 10/10 files", text), text
    assert stdout.startswith("event ball_t-2: done")  # the summary: on stdout, not in the bar
    assert "event ball_t-2" not in text


def test_trigger_wait_prints_progress_lines_and_the_summary(tmp_path: Path) -> None:
    cameras = ["cam01", "cam02"]
    layout = make_layout(tmp_path / "fleet", cameras)
    for camera in cameras:
        write_frames(layout.src(camera), camera, range(300, 320))
    with receivers_of(layout), trigger_server(layout):
        done = run(
            [
                "trigger",
                "--port",
                str(layout.zmq_port),
                "--frame-id",
                frame_name("cam01", 300),
                "--ball-id",
                "ball_p",
                "--wait",
                "--progress-interval",
                "0",
                "--json",
            ],
            cwd=layout.root,
        )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)  # stdout: only the JSON status
    assert status["state"] == "done"
    last = [m for m in map(LINE.search, done.stderr.splitlines()) if m][-1]
    assert (int(last["done"]), int(last["expected"]), int(last["failed"])) == (20, 20, 0)
    assert "ball_p-300: " in done.stderr
