"""Every event ends, and a waiting `camxfer trigger --wait` reports how.

- Frames past the last one written never show up as gaps: the event's --timeout ends it, and
  they are reported missing.
- SIGTERM stops the trigger server promptly even while an event waits for frames.
- A trigger server restarted mid-event no longer knows the event: the waiting command must
  not report success.
- A receiver that stops answering (but still takes connections) holds its camera's manifest,
  and so the event, only a bounded grace past the event's timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import (
    CAMXFER,
    ENV,
    MANIFEST_NAME,
    Layout,
    Proc,
    make_layout,
    receiver_pid,
    receivers,
    run,
    trigger_server,
    wait_for,
    write_frames,
)

from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of stalling CI

CAMERAS = ["cam01", "cam02"]


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[tuple[Layout, Proc]]:
    layout = make_layout(tmp_path, CAMERAS)
    for camera in CAMERAS:
        write_frames(layout.src(camera), camera, range(0, 6))
    with receivers(layout, workers=1) as proc:
        yield layout, proc


def test_frames_never_written_at_the_end_are_missing_when_the_event_times_out(
    layout: tuple[Layout, Proc],
) -> None:
    fleet = layout[0]
    with trigger_server(fleet, timeout=2):
        result = run(
            [
                "trigger",
                "--port",
                str(fleet.zmq_port),
                "--frame-id",
                frame_name("cam01", 2),
                "--ball-id",
                "ball_tail",
                "--wait",
                "--json",
                "--timeout",
                "20",
            ],
            cwd=fleet.root,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "failed"
    for camera in CAMERAS:
        cam = status["cameras"][camera]
        assert (cam["asked"], cam["landed"], cam["missing"], cam["failed"]) == (10, 4, 6, 0)
        assert {p["name"] for p in cam["problems"]} == {frame_name(camera, n) for n in range(6, 12)}
        landed = fleet.dest(camera) / "ball_tail" / camera
        assert sorted(p.name for p in landed.iterdir()) == [
            MANIFEST_NAME,
            *(frame_name(camera, n) for n in range(2, 6)),
        ]


def test_waiting_command_fails_when_the_server_forgets_the_event(
    layout: tuple[Layout, Proc],
) -> None:
    fleet = layout[0]
    with trigger_server(fleet, timeout=60) as first:
        client = TriggerClient("127.0.0.1", fleet.zmq_port, timeout=2)
        assert client.trigger(frame_name("cam01", 100), "ball_lost")["ok"]
        waiting = subprocess.Popen(
            [
                *CAMXFER,
                "trigger",
                "--port",
                str(fleet.zmq_port),
                "--status",
                "ball_lost-100",
                "--wait",
                "--json",
                "--timeout",
                "40",
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.status("ball_lost-100")["state"] == "running"
            # The event waits for frames 100.. that never come; SIGTERM still stops it at once.
            assert first.stop(timeout=15) == 0
            with trigger_server(fleet, timeout=60):
                out, err = waiting.communicate(timeout=30)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait(5)
    assert waiting.returncode == 1, out + err
    assert "no event 'ball_lost-100'" in out + err


def test_waiting_past_the_timeout_on_a_running_event_fails_with_1(
    layout: tuple[Layout, Proc],
) -> None:
    """Not every asked frame landed in time: a failed wait (1), not a usage error (2)."""
    fleet = layout[0]
    with trigger_server(fleet, timeout=60):
        result = run(
            [
                "trigger",
                "--port",
                str(fleet.zmq_port),
                "--frame-id",
                frame_name("cam01", 200),
                "--ball-id",
                "ball_slow",
                "--wait",
                "--timeout",
                "1",
            ],
            cwd=fleet.root,
        )
        client = TriggerClient("127.0.0.1", fleet.zmq_port, timeout=2)
        assert client.status("ball_slow-200")["state"] == "running"
    assert result.returncode == 1, result.stdout + result.stderr
    assert "still running after 1 s" in result.stderr


@pytest.mark.timeout(200)
def test_a_receiver_that_stops_answering_holds_the_event_only_a_grace_past_its_timeout(
    layout: tuple[Layout, Proc],
) -> None:
    """cam02's receiver is stopped (SIGSTOP: a wedged storage host, whose kernel still takes
    connections) once frames 2..5 landed, while the event waits for 6..11 until its timeout
    of 10 s. The manifest then finds no answer; the event must still end, with the reason,
    within the grace (30 s) past its timeout, not after 4 tries of 120 s. (One connection per
    camera, kept for the manifest: a second one would wait up to --ack-timeout for its END.)"""
    fleet, recv = layout
    landed = fleet.dest("cam02") / "ball_hung" / "cam02"
    with trigger_server(fleet, "--conns", "1", timeout=10):
        client = TriggerClient("127.0.0.1", fleet.zmq_port, timeout=2)
        assert client.trigger(frame_name("cam01", 2), "ball_hung")["ok"]
        wait_for(lambda: len(list(landed.glob("frame_*"))) == 4, 30, "cam02's frames 2..5")
        hung = receiver_pid(recv, fleet.ports["cam02"])
        os.kill(hung, signal.SIGSTOP)
        try:
            result = run(
                [
                    "trigger",
                    "--port",
                    str(fleet.zmq_port),
                    "--status",
                    "ball_hung-2",
                    "--wait",
                    "--json",
                    "--timeout",
                    "120",
                    "--progress",
                    "off",
                ],
                cwd=fleet.root,
                timeout=150,
            )
        finally:
            os.kill(hung, signal.SIGCONT)
    assert "still running" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "failed"
    cam01, cam02 = status["cameras"]["cam01"], status["cameras"]["cam02"]
    assert (cam01["landed"], cam01["missing"], cam01["manifest"]) == (4, 6, "landed")
    assert (cam02["landed"], cam02["missing"]) == (4, 6)
    assert cam02["manifest"].startswith("not landed"), cam02["manifest"]
