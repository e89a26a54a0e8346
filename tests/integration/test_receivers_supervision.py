"""`camxfer receivers` keeps one receiver per camera running, and stops them all on SIGTERM.

A receiver killed with SIGKILL (its worker processes left behind, as after an OOM kill) is
restarted on the same port and takes transfers again; SIGTERM to the supervisor leaves no
process and no listening port behind. Receivers are found as the supervisor's children in
/proc/<pid>/task/*/children, never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import (
    Layout,
    Proc,
    alive,
    children,
    descendants,
    files_under,
    make_layout,
    port_accepts,
    receivers,
    run,
    sha256,
    wait_for,
    write_frames,
)

from tests.conftest import temps_under

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of stalling CI

CAMERAS = ["cam01", "cam02"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Layout, Proc]]:
    layout = make_layout(tmp_path, CAMERAS)
    with receivers(layout, workers=2) as proc:
        yield layout, proc


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def receiver_of(supervisor: int, port: int) -> int | None:
    """The supervisor's child that runs the receiver for `port`, if there is one."""
    for pid in children(supervisor):
        argv = cmdline(pid)
        if "recv" in argv and argv[argv.index("--port") + 1] == str(port):
            return pid
    return None


def test_killed_receiver_is_restarted_and_takes_transfers_again(
    fleet: tuple[Layout, Proc],
) -> None:
    layout, supervisor = fleet
    port = layout.ports["cam01"]
    old = receiver_of(supervisor.pid, port)
    other = receiver_of(supervisor.pid, layout.ports["cam02"])
    assert old is not None and other is not None
    old_workers = wait_for(
        lambda: children(old) if len(children(old)) == 2 else None, 10, "workers"
    )

    os.kill(old, signal.SIGKILL)

    supervisor.wait_log("restart #1")
    new = wait_for(
        lambda: (pid := receiver_of(supervisor.pid, port)) not in (None, old) and pid,
        10,
        "a new receiver process for cam01",
    )
    # The new receiver owns the port: its own two workers run (it could bind), and the
    # killed receiver's workers are gone rather than serving on as orphans.
    wait_for(lambda: len(children(new)) == 2, 10, "the new receiver's two workers")
    wait_for(lambda: not any(alive(pid) for pid in old_workers), 10, "old workers to be gone")
    assert port_accepts(port)

    src = layout.src("cam01")
    write_frames(src, "cam01", range(12))
    result = run(
        [
            "send",
            "--src-dir",
            str(src),
            "--port",
            str(port),
            "--once",
            "--dest-path",
            "after_restart/cam01",
            "--json-stats",
        ],
        cwd=layout.root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    landed = layout.dest("cam01") / "after_restart" / "cam01"
    assert files_under(landed) == {p.name: sha256(p) for p in src.iterdir()}
    assert temps_under(layout.root / "storage") == []

    log = supervisor.text()
    assert log.count("restart #") == 1, log  # the new receiver came up at the first try
    assert "Address already in use" not in log
    assert alive(new) and receiver_of(supervisor.pid, layout.ports["cam02"]) == other


def test_sigterm_stops_every_receiver_and_closes_every_port(fleet: tuple[Layout, Proc]) -> None:
    layout, supervisor = fleet
    processes = wait_for(
        lambda: pids if len(pids := descendants(supervisor.pid)) == 6 else None,
        10,
        "two receivers with two workers each",
    )
    assert all(port_accepts(layout.ports[c]) for c in CAMERAS)

    supervisor.process.send_signal(signal.SIGTERM)
    try:
        code = supervisor.process.wait(25)
    except subprocess.TimeoutExpired:
        pytest.fail("the supervisor did not stop within 25 s of SIGTERM")

    assert code == 0
    wait_for(lambda: not any(alive(pid) for pid in processes), 5, "every receiver process gone")
    assert not any(port_accepts(layout.ports[c]) for c in CAMERAS)
    assert "stopped" in supervisor.text().splitlines()[-1]
