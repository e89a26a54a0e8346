"""`camxfer senders` without triggers: every camera's backlog to <dest>/<camera>/, in the
foreground (`--once`) or detached with a pid and log file per camera (`--list`, `--stop`).

Detached senders leave our process tree, so the fixture reads their pids from the pid files
and the command's output, and kills any that still run (checking each is a camxfer process).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import (
    CAMXFER,
    ENV,
    Layout,
    Proc,
    alive,
    files_under,
    final_names,
    make_layout,
    receivers,
    run,
    sha256,
    wait_for,
    write_frames,
)

from tests.conftest import temps_under

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of stalling CI

CAMERAS = ["cam01", "cam02"]
BACKLOG = {"cam01": range(0, 12), "cam02": range(40, 47)}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Layout, Proc]]:
    layout = make_layout(tmp_path, CAMERAS)
    for camera, numbers in BACKLOG.items():
        write_frames(layout.src(camera), camera, numbers)
    with receivers(layout) as proc:
        yield layout, proc


def assert_backlogs_landed(layout: Layout) -> None:
    for camera in CAMERAS:
        want = {p.name: sha256(p) for p in layout.src(camera).iterdir()}
        assert files_under(layout.dest(camera)) == {f"{camera}/{n}": h for n, h in want.items()}
    assert temps_under(layout.root / "storage") == []


def test_once_sends_each_cameras_backlog_to_its_own_folder(
    fleet: tuple[Layout, Proc],
) -> None:
    layout = fleet[0]
    result = run(
        ["senders", "--config", str(layout.config), "--once", "--timeout", "30"], cwd=layout.root
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_backlogs_landed(layout)
    for camera in CAMERAS:
        assert f"{camera}: sender exited with status 0" in result.stderr


@pytest.fixture
def detached_pids() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(OSError):
            if alive(pid) and b"camxfer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_detach_list_and_stop(fleet: tuple[Layout, Proc], detached_pids: list[int]) -> None:
    layout = fleet[0]
    run_dir = layout.root / "run"
    base = ["senders", "--config", str(layout.config), "--run-dir", str(run_dir)]

    started = run([*base, "--detach", "--timeout", "120"], cwd=layout.root)
    assert started.returncode == 0, started.stderr
    printed = dict(re.findall(r"^(\w+): pid (\d+), log ", started.stdout, re.MULTILINE))
    detached_pids.extend(int(pid) for pid in printed.values())
    assert sorted(printed) == CAMERAS
    for camera in CAMERAS:
        pid = int(printed[camera])
        assert (run_dir / f"{camera}.pid").read_text().strip() == str(pid)
        assert (run_dir / f"{camera}.log").is_file()
        assert alive(pid)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--src-dir") + 1] == bytes(layout.src(camera))

    # They run in the background: the backlog lands, and a frame written now follows it.
    storage = layout.root / "storage"
    wait_for(lambda: len(final_names(storage)) == 19, 20, "the backlogs to land")
    write_frames(layout.src("cam02"), "cam02", [47])
    wait_for(
        lambda: (layout.dest("cam02") / "cam02" / "frame_cam02_000000047.jpg").is_file(),
        20,
        "a new frame to be sent by the detached sender",
    )
    assert_backlogs_landed(layout)

    listed = run([*base, "--list"], cwd=layout.root)
    assert listed.returncode == 0
    for camera in CAMERAS:
        assert f"{camera}: running, pid {printed[camera]}, log {run_dir / camera}.log" in (
            listed.stdout
        )

    again = run([*base, "--detach", "--timeout", "120"], cwd=layout.root)
    assert again.returncode == 0
    assert dict(re.findall(r"^(\w+): pid (\d+), log ", again.stdout, re.MULTILINE)) == printed

    stopped = run([*base, "--stop"], cwd=layout.root, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert sorted(stopped.stdout.split("\n")[:-1]) == [f"{c}: stopped" for c in CAMERAS]
    for pid in printed.values():
        wait_for(lambda pid=pid: not alive(int(pid)), 5, f"sender pid {pid} to be gone")
    assert list(run_dir.glob("*.pid")) == []
    for camera in CAMERAS:
        assert "stopping" in (run_dir / f"{camera}.log").read_text()

    after = run([*base, "--list"], cwd=layout.root)
    assert after.returncode == 0
    assert after.stdout == f"no detached senders in {run_dir}\n"


def test_one_ctrl_c_stops_the_senders_gracefully(fleet: tuple[Layout, Proc]) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group; each sender must see
    SIGINT once (a second one means "abandon the files in flight")."""
    layout = fleet[0]
    log = layout.root / "senders.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*CAMXFER, "senders", "--config", str(layout.config), "--timeout", "60"],
            cwd=layout.root,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a shell job
        )
    senders = Proc("camxfer senders", process, log)
    try:
        wait_for(lambda: len(final_names(layout.root / "storage")) == 19, 20, "the backlogs")
        senders_group = os.getpgid(process.pid)
        for pid in senders.remember_descendants():
            # Else the terminal's SIGINT reaches each sender besides the one forwarded to it.
            assert os.getpgid(pid) != senders_group
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        senders.stop()
    text = senders.text()
    assert text.count("SIGINT: finishing files in flight, then stopping") == 2, text
    assert "abandoning" not in text
    assert_backlogs_landed(layout)
