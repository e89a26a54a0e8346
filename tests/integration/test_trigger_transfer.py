"""A ZMQ trigger moves exactly the event's frames of every camera, whole, and reports them.

One fleet for the module: `camxfer receivers --verbose` (its log names every landed file) and
`camxfer senders --zmq --max-files 10 --frame-timeout 1 --timeout 30` as real subprocesses,
two cameras each landing on its own disk folder. Every test uses its own ball id, so the
events do not see each other's files.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import (
    MANIFEST_NAME,
    Layout,
    Proc,
    files_under,
    frame_bytes,
    make_layout,
    receivers,
    run,
    sha256,
    trigger_server,
    write_frames,
)

from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name
from tests.conftest import temps_under

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of stalling CI

CAMERAS = ["cam01", "cam02"]
GAP = {"cam01": {203, 204}, "cam02": set()}  # frames the cameras never wrote
LATE = {"cam01": set(), "cam02": {226}}  # written only after the first trigger gave up on it


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Proc, Proc]]:
    layout = make_layout(tmp_path_factory.mktemp("fleet"), CAMERAS)
    for camera in CAMERAS:
        write_frames(layout.src(camera), camera, range(100, 140))
        write_frames(layout.src(camera), camera, sorted(set(range(200, 215)) - GAP[camera]))
        write_frames(layout.src(camera), camera, sorted(set(range(220, 235)) - LATE[camera]))
    with receivers(layout, "--verbose") as recv, trigger_server(layout) as send:
        yield layout, recv, send


@pytest.fixture
def client(fleet: tuple[Layout, Proc, Proc]) -> TriggerClient:
    return TriggerClient("127.0.0.1", fleet[0].zmq_port, timeout=5.0)


def expected_files(layout: Layout, camera: str, numbers: range | list[int]) -> dict[str, str]:
    return {
        frame_name(camera, n): sha256(layout.src(camera) / frame_name(camera, n)) for n in numbers
    }


def assert_landed_exactly(layout: Layout, ball: str, numbers: dict[str, list[int]]) -> None:
    """<dest>/<ball>/ holds exactly these frames of its camera, each byte-identical."""
    for camera in CAMERAS:
        ball_dir = layout.dest(camera) / ball
        want = {
            f"{camera}/{name}": digest
            for name, digest in expected_files(layout, camera, numbers[camera]).items()
        }
        assert files_under(ball_dir) == want
    assert temps_under(layout.root / "storage") == []


def assert_status(
    status: dict, numbers: dict[str, list[int]], *, asked: int = 10, missing: dict | None = None
) -> None:
    missing = missing or {}
    for camera in CAMERAS:
        cam = status["cameras"][camera]
        want_bytes = sum(len(frame_bytes(camera, n)) for n in numbers[camera])
        assert (cam["asked"], cam["landed"], cam["missing"], cam["failed"], cam["bytes"]) == (
            asked,
            len(numbers[camera]),
            missing.get(camera, 0),
            0,
            want_bytes,
        )
    totals = status["totals"]
    assert totals["asked"] == asked * len(CAMERAS)
    assert totals["landed"] == sum(len(n) for n in numbers.values())
    assert totals["missing"] == sum(missing.values())
    assert totals["bytes"] == sum(status["cameras"][c]["bytes"] for c in CAMERAS)


def test_cli_trigger_with_wait_lands_the_event_frames_of_every_camera(
    fleet: tuple[Layout, Proc, Proc],
) -> None:
    layout = fleet[0]
    result = run(
        [
            "trigger",
            "--port",
            str(layout.zmq_port),
            "--frame-id",
            frame_name("cam01", 100),
            "--ball-id",
            "ball_cli",
            "--wait",
            "--json",
        ],
        cwd=layout.root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    numbers = {camera: list(range(100, 110)) for camera in CAMERAS}
    assert (status["ok"], status["event"], status["state"]) == (True, "ball_cli-100", "done")
    assert_status(status, numbers)
    assert_landed_exactly(layout, "ball_cli", numbers)


def test_python_client_trigger_lands_the_event_frames_of_every_camera(
    fleet: tuple[Layout, Proc, Proc], client: TriggerClient
) -> None:
    layout = fleet[0]
    # The frame id names cam02, yet the event covers the same numbers on every camera.
    reply = client.trigger(frame_name("cam02", 125), "ball_py")
    assert reply == {"ok": True, "event": "ball_py-125"}
    status = client.wait(reply["event"], timeout=30)
    numbers = {camera: list(range(125, 135)) for camera in CAMERAS}
    assert status["state"] == "done"
    assert_status(status, numbers)
    assert_landed_exactly(layout, "ball_py", numbers)


def test_frames_that_never_appear_are_reported_missing_and_the_event_ends(
    fleet: tuple[Layout, Proc, Proc],
) -> None:
    layout = fleet[0]
    result = run(
        [
            "trigger",
            "--port",
            str(layout.zmq_port),
            "--frame-id",
            frame_name("cam01", 200),
            "--ball-id",
            "ball_gap",
            "--wait",
            "--json",
            "--timeout",
            "25",
        ],
        cwd=layout.root,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    status = json.loads(result.stdout)
    numbers = {c: sorted(set(range(200, 210)) - GAP[c]) for c in CAMERAS}
    assert status["state"] == "failed"
    assert_status(status, numbers, missing={"cam01": 2})
    problems = {p["name"] for p in status["cameras"]["cam01"]["problems"]}
    assert problems == {frame_name("cam01", 203), frame_name("cam01", 204)}
    assert status["cameras"]["cam02"]["problems"] == []
    assert_landed_exactly(layout, "ball_gap", numbers)


def test_frames_written_after_the_trigger_are_waited_for_and_land(
    fleet: tuple[Layout, Proc, Proc], client: TriggerClient
) -> None:
    layout = fleet[0]
    reply = client.trigger(frame_name("cam01", 300), "ball_live")
    assert reply == {"ok": True, "event": "ball_live-300"}
    early = client.status("ball_live-300")
    assert (early["state"], early["totals"]["landed"]) == ("running", 0)

    errors: list[BaseException] = []

    def camera_writer() -> None:
        # Frames appear one by one over about a second, each written in two parts, as a
        # camera would; a frame sent before it is whole would fail the hash check below.
        try:
            for number in range(300, 310):
                for camera in CAMERAS:
                    data = frame_bytes(camera, number)
                    with open(layout.src(camera) / frame_name(camera, number), "wb") as f:
                        f.write(data[: len(data) // 2])
                        f.flush()
                        time.sleep(0.02)
                        f.write(data[len(data) // 2 :])
                time.sleep(0.06)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=camera_writer, daemon=True)
    writer.start()
    status = client.wait("ball_live-300", timeout=30, interval=0.2)
    writer.join(10)
    assert not writer.is_alive() and errors == []
    numbers = {camera: list(range(300, 310)) for camera in CAMERAS}
    assert status["state"] == "done"
    assert_status(status, numbers)
    assert_landed_exactly(layout, "ball_live", numbers)


def landed_log_lines(receivers_proc: Proc, layout: Layout, ball: str) -> dict[str, int]:
    """How many receiver log lines name each landed file of `ball` (landed or duplicate)."""
    text = receivers_proc.text()
    counts = {}
    for camera in CAMERAS:
        for path in (layout.dest(camera) / ball / camera).iterdir():
            if path.name == MANIFEST_NAME:
                continue  # logged once per run of the camera, by design
            counts[path.name] = sum(
                1 for line in text.splitlines() if f"{ball}/{camera}/{path.name}" in line
            )
    return counts


def test_repeated_trigger_is_the_same_event_and_sends_nothing_twice(
    fleet: tuple[Layout, Proc, Proc], client: TriggerClient
) -> None:
    layout, recv, send = fleet
    first = client.trigger(frame_name("cam01", 110), "ball_again")
    again_while_running = client.trigger(frame_name("cam01", 110), "ball_again")
    assert first == again_while_running == {"ok": True, "event": "ball_again-110"}
    done = client.wait("ball_again-110", timeout=30)
    assert done["state"] == "done"
    numbers = {camera: list(range(110, 120)) for camera in CAMERAS}
    assert_status(done, numbers)
    landed = {
        path: (path.stat().st_ino, path.stat().st_mtime_ns)
        for camera in CAMERAS
        for path in (layout.dest(camera) / "ball_again" / camera).iterdir()
        if path.name != MANIFEST_NAME
    }
    # A receiver logs a file before it acks it, so the log is complete once the event is done.
    assert landed_log_lines(recv, layout, "ball_again") == dict.fromkeys(
        (p.name for p in landed), 1
    )

    # Once it has ended, the same trigger again: same event, nothing sent.
    assert client.trigger(frame_name("cam02", 110), "ball_again") == first
    after = client.wait("ball_again-110", timeout=30)
    assert after["state"] == "done"
    assert_status(after, numbers)
    assert send.text().count("-> event ball_again-110") == 3
    assert landed_log_lines(recv, layout, "ball_again") == dict.fromkeys(
        (p.name for p in landed), 1
    )
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in landed} == landed
    assert_landed_exactly(layout, "ball_again", numbers)


def test_trigger_again_after_a_late_frame_sends_only_that_frame(
    fleet: tuple[Layout, Proc, Proc], client: TriggerClient
) -> None:
    layout, recv, _send = fleet
    first = client.trigger(frame_name("cam01", 220), "ball_late")
    failed = client.wait(first["event"], timeout=30)
    before = {c: sorted(set(range(220, 230)) - LATE[c]) for c in CAMERAS}
    assert failed["state"] == "failed"
    assert_status(failed, before, missing={"cam02": 1})

    write_frames(layout.src("cam02"), "cam02", [226])
    assert client.trigger(frame_name("cam01", 220), "ball_late") == first
    done = client.wait(first["event"], timeout=30)
    numbers = {camera: list(range(220, 230)) for camera in CAMERAS}
    assert done["state"] == "done"
    assert_status(done, numbers)
    assert_landed_exactly(layout, "ball_late", numbers)
    counts = landed_log_lines(recv, layout, "ball_late")
    assert counts == dict.fromkeys(counts, 1) and len(counts) == 20


def test_overlapping_triggers_for_different_balls_both_complete(
    fleet: tuple[Layout, Proc, Proc], client: TriggerClient
) -> None:
    layout = fleet[0]
    a = client.trigger(frame_name("cam01", 101), "ball_a")
    b = client.trigger(frame_name("cam01", 105), "ball_b")
    assert (a["event"], b["event"]) == ("ball_a-101", "ball_b-105")
    status_a = client.wait(a["event"], timeout=30)
    status_b = client.wait(b["event"], timeout=30)
    numbers_a = {camera: list(range(101, 111)) for camera in CAMERAS}
    numbers_b = {camera: list(range(105, 115)) for camera in CAMERAS}
    assert (status_a["state"], status_b["state"]) == ("done", "done")
    assert_status(status_a, numbers_a)
    assert_status(status_b, numbers_b)
    assert_landed_exactly(layout, "ball_a", numbers_a)
    assert_landed_exactly(layout, "ball_b", numbers_b)


def test_each_disk_holds_only_the_balls_that_were_triggered(
    fleet: tuple[Layout, Proc, Proc], client: TriggerClient
) -> None:
    """Nothing landed outside <dest>/<ball>/<camera>/ for a ball some trigger named."""
    layout = fleet[0]
    events = client.request({"list": True})["events"]
    balls = {event.rsplit("-", 1)[0] for event in events}
    assert balls  # the tests before this one triggered events
    for camera in CAMERAS:
        dest = layout.dest(camera)
        assert {p.name for p in dest.iterdir()} <= balls
        for ball in dest.iterdir():
            assert [p.name for p in ball.iterdir()] == [camera]
    assert sorted(p.name for p in layout.root.iterdir()) == [
        "camera_config.json",
        "receivers.log",
        "senders.log",
        "src",
        "storage",
    ]
    assert sorted(Path(layout.root, "storage").iterdir()) == sorted(layout.dest(c) for c in CAMERAS)
    assert temps_under(layout.root / "storage") == []
