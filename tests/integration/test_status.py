"""`camxfer status` shows the services as they are: started, answering, stopped.

Real services under `camxfer service` (pid files in a run folder): the receivers and a trigger
server of a two-camera layout. One event is triggered so the status has landed frames, a
backlog and an event to show; then the receivers are stopped and the status says so.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import CAMXFER, free_ports, make_layout, run, write_frames

from camxfer.fleet.status import last_landed
from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name

pytestmark = pytest.mark.timeout(120)

CAMERAS = ["cam01", "cam02"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "run"
    yield folder
    for name in ("camxfer-receiver", "camxfer-trigger"):  # stopped by pid file, never by name
        run(["service", "stop", name, "--run-dir", str(folder), "--grace", "10"], cwd=tmp_path)


def status(run_dir: Path, cwd: Path) -> tuple[int, dict]:
    done = run(["status", "--run-dir", str(run_dir), "--json"], cwd=cwd)
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def test_status_reflects_services_started_and_stopped(tmp_path: Path, run_dir: Path) -> None:
    layout = make_layout(tmp_path / "fleet", CAMERAS)
    for camera in CAMERAS:
        write_frames(layout.src(camera), camera, range(100, 130))
    metrics_port = free_ports(1)[0]
    ports = [layout.ports[c] for c in CAMERAS]
    service = ["service", "start", "--run-dir", str(run_dir)]
    started = run(
        [
            *service[:2],
            "camxfer-receiver",
            *service[2:],
            *(f"--ready-port=127.0.0.1:{port}" for port in ports),
            "--",
            *CAMXFER,
            "receivers",
            "--config",
            str(layout.config),
            "--workers",
            "1",
            "--listen-ip",
            "127.0.0.1",
            "--metrics-port",
            str(metrics_port),
        ],
        cwd=layout.root,
    )
    assert started.returncode == 0, started.stderr
    started = run(
        [
            *service[:2],
            "camxfer-trigger",
            *service[2:],
            f"--ready-port=127.0.0.1:{layout.zmq_port}",
            "--",
            *CAMXFER,
            "senders",
            "--zmq",
            "--config",
            str(layout.config),
            "--zmq-bind",
            "127.0.0.1",
            "--zmq-port",
            str(layout.zmq_port),
            "--max-files",
            "10",
            "--frame-timeout",
            "1",
        ],
        cwd=layout.root,
    )
    assert started.returncode == 0, started.stderr
    client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=5.0)
    event = client.trigger(frame_name("cam01", 110), "ball_s")["event"]
    assert client.wait(event, timeout=60)["state"] == "done"

    code, up = status(run_dir, layout.root)
    assert code == 0 and up["ok"], up
    services = {s["name"]: s for s in up["services"]}
    assert services["camxfer-receiver"]["running"] and services["camxfer-receiver"]["pid"]
    assert services["camxfer-receiver"]["kind"] == "receivers"
    assert {
        (e["what"], e["port"], e["listening"]) for e in services["camxfer-receiver"]["endpoints"]
    } == {
        ("receiver cam01", ports[0], True),
        ("receiver cam02", ports[1], True),
        ("metrics", metrics_port, True),
    }
    trigger = services["camxfer-trigger"]
    assert trigger["running"] and trigger["kind"] == "senders"
    assert [(e["what"], e["port"], e["listening"]) for e in trigger["endpoints"]] == [
        ("trigger", layout.zmq_port, True)
    ]
    cameras = {c["name"]: c for c in up["cameras"]}
    for camera in CAMERAS:
        # Frames 110..119 landed; 120..129 are still only in the ring buffer.
        assert cameras[camera]["frames"] == 30
        assert cameras[camera]["newest"] == 129
        assert cameras[camera]["last_landed"] == 119
        assert cameras[camera]["backlog"] == 10
        assert cameras[camera]["side"] == "camera+storage"
    assert [(e["event"], e["state"]) for e in up["events"]] == [("ball_s-110", "done")]
    assert up["events"][0]["totals"]["landed"] == 20

    screen = run(["status", "--run-dir", str(run_dir)], cwd=layout.root)
    assert screen.returncode == 0
    assert "camxfer-receiver" in screen.stdout and "ball_s-110" in screen.stdout

    stopped = run(["service", "stop", "camxfer-receiver", "--run-dir", str(run_dir)], cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    code, down = status(run_dir, layout.root)
    assert code == 1 and not down["ok"]
    services = {s["name"]: s for s in down["services"]}
    assert services["camxfer-receiver"]["running"] is False
    assert services["camxfer-receiver"]["pid"] is None
    assert services["camxfer-trigger"]["running"] is True
    screen = run(["status", "--run-dir", str(run_dir)], cwd=layout.root)
    assert screen.returncode == 1
    assert "DOWN" in screen.stdout


def test_last_landed_takes_ball_folders_removed_while_it_looks(tmp_path: Path) -> None:
    """Old event folders deleted on the storage host (a cleanup, `camxfer clear`) while
    `camxfer status` looks: a ball folder listed and then gone made the sort by age raise
    FileNotFoundError, and status ended in a traceback."""
    dest = tmp_path / "dest"
    for ball in range(3000):
        (dest / f"ball_{ball:04d}").mkdir(parents=True)
    (dest / "ball_keep" / "camera01").mkdir(parents=True)
    (dest / "ball_keep" / "camera01" / frame_name("camera01", 7)).write_bytes(b"x")
    remover = subprocess.Popen(
        ["sh", "-c", f"for d in {dest}/ball_0*; do rmdir $d; done"],
        stdin=subprocess.DEVNULL,
    )
    try:
        while remover.poll() is None:
            last_landed(dest, "camera01")
    finally:
        remover.wait(60)
    assert last_landed(dest, "camera01") == 7
