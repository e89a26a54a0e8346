"""A ZMQ trigger leaves one manifest per camera, and `camxfer events` reports the event from them.

Real `camxfer receivers` and `camxfer senders --zmq` subprocesses (max 10 frames per camera,
frame timeout 1 s). cam01 never wrote frame 104, so its part of the event reports it missing.
The manifests' checksums are compared with the camera's own files: end to end.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash
from fleet_helpers import (
    MANIFEST_NAME,
    Layout,
    Proc,
    files_under,
    make_layout,
    receiver_pid,
    receivers,
    run,
    sha256,
    trigger_server,
    wait_for,
    write_frames,
)

from camxfer import auth
from camxfer.frames import frame_name
from camxfer.manifest import Manifest, parse_manifest
from tests.conftest import temps_under

pytestmark = pytest.mark.timeout(90)

CAMERAS = ["cam01", "cam02"]
GAP = {"cam01": {104}, "cam02": set()}
MISSING = "missing: never appeared"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Layout, Proc]]:
    layout = make_layout(tmp_path, CAMERAS)
    for camera in CAMERAS:
        write_frames(layout.src(camera), camera, sorted(set(range(100, 112)) - GAP[camera]))
    with receivers(layout, workers=2) as proc:
        yield layout, proc


def trigger(layout: Layout, ball: str) -> tuple[int, dict]:
    result = run(
        [
            "trigger",
            "--port",
            str(layout.zmq_port),
            "--frame-id",
            frame_name("cam01", 100),
            "--ball-id",
            ball,
            "--wait",
            "--json",
        ],
        cwd=layout.root,
    )
    return result.returncode, json.loads(result.stdout)


def manifest_of(layout: Layout, camera: str, ball: str) -> Manifest:
    return parse_manifest((layout.landed(camera, ball) / MANIFEST_NAME).read_bytes())


def assert_manifest_is_the_camera_frames(
    layout: Layout, camera: str, ball: str, numbers: list[int]
) -> Manifest:
    """The manifest lists exactly these frames, with the size and XXH3 of the camera's file."""
    manifest = manifest_of(layout, camera, ball)
    assert sorted(manifest.files) == [frame_name(camera, n) for n in numbers]
    for name, entry in manifest.files.items():
        data = (layout.src(camera) / name).read_bytes()
        assert (entry.size, entry.checksum) == (len(data), xxhash.xxh3_128(data).hexdigest())
    assert (manifest.event, manifest.ball_id, manifest.camera) == (f"{ball}-100", ball, camera)
    assert (manifest.first_frame, manifest.asked) == (frame_name(camera, 100), 10)
    return manifest


def events_json(layout: Layout, *args: str) -> tuple[int, dict]:
    result = run(["events", "--config", str(layout.config), "--json", *args], cwd=layout.root)
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


def test_trigger_leaves_a_manifest_per_camera_and_events_reports_it(
    fleet: tuple[Layout, Proc],
) -> None:
    layout = fleet[0]
    with trigger_server(layout):
        code, status = trigger(layout, "ball_m")
    assert (code, status["state"]) == (1, "failed")  # cam01's frame 104 never appeared
    assert {c: status["cameras"][c]["manifest"] for c in CAMERAS} == dict.fromkeys(
        CAMERAS, "landed"
    )
    wanted = {c: sorted(set(range(100, 110)) - GAP[c]) for c in CAMERAS}
    for camera in CAMERAS:
        manifest = assert_manifest_is_the_camera_frames(layout, camera, "ball_m", wanted[camera])
        skipped = [(s.name, s.reason) for s in manifest.skipped()]
        assert skipped == [(frame_name(camera, n), MISSING) for n in sorted(GAP[camera])]
        assert manifest.runs[-1].files == len(wanted[camera])
    assert temps_under(layout.root / "storage") == []

    code, listing = events_json(layout)
    assert code == 0
    (event,) = listing["events"]
    assert (event["event"], event["ball_id"], event["complete"]) == ("ball_m-100", "ball_m", False)
    cam01, cam02 = event["cameras"]["cam01"], event["cameras"]["cam02"]
    assert (cam01["asked"], cam01["landed"], cam01["skipped"]) == (10, 9, 1)
    assert cam01["skipped_files"] == [{"name": frame_name("cam01", 104), "reason": MISSING}]
    assert (cam02["asked"], cam02["landed"], cam02["skipped"], cam02["complete"]) == (
        10,
        10,
        0,
        True,
    )
    assert cam02["bytes"] == sum(
        len((layout.src("cam02") / frame_name("cam02", n)).read_bytes()) for n in range(100, 110)
    )
    assert event["totals"]["landed"] == 19

    one = run(["events", "--config", str(layout.config), "ball_m-100"], cwd=layout.root)
    assert one.returncode == 1  # not every frame asked landed
    assert "event ball_m-100  INCOMPLETE" in one.stdout
    assert f"skipped {frame_name('cam01', 104)}: {MISSING}" in one.stdout
    unknown = run(["events", "--config", str(layout.config), "ball_x-1"], cwd=layout.root)
    assert unknown.returncode == 1 and "no event 'ball_x-1'" in unknown.stderr

    for camera in CAMERAS:
        verify = run(["verify", str(layout.dest(camera) / "ball_m")], cwd=layout.root)
        assert verify.returncode == 0, verify.stdout
        # The playbook's comparison: digest of the landed folder == digest of the camera's.
        landed = run(["digest", str(layout.landed(camera, "ball_m")), "--json"], cwd=layout.root)
        names = [frame_name(camera, n) for n in wanted[camera]]
        source = run(
            ["digest", str(layout.src(camera)), "--json", "--names", *names], cwd=layout.root
        )
        assert json.loads(landed.stdout) == json.loads(source.stdout)


def test_restarted_trigger_server_lands_nothing_twice_and_the_manifest_covers_all(
    fleet: tuple[Layout, Proc],
) -> None:
    layout = fleet[0]
    with trigger_server(layout) as server:
        code, _status = trigger(layout, "ball_r")
        assert code == 1
        server.process.kill()  # SIGKILL: the new server process knows nothing of the event
        server.process.wait(10)
    first = {c: manifest_of(layout, c, "ball_r") for c in CAMERAS}
    write_frames(layout.src("cam01"), "cam01", [104])  # the late frame is there now

    with trigger_server(layout):
        code, status = trigger(layout, "ball_r")
    assert (code, status["state"]) == (0, "done")
    for camera in CAMERAS:
        expected = {
            f"{camera}/{frame_name(camera, n)}": sha256(layout.src(camera) / frame_name(camera, n))
            for n in range(100, 110)
        }
        assert files_under(layout.dest(camera) / "ball_r") == expected
        manifest = assert_manifest_is_the_camera_frames(
            layout, camera, "ball_r", list(range(100, 110))
        )
        assert len(manifest.runs) == 2 and manifest.skipped() == []
        # Everything was resent by the new process; what had landed was not written again.
        assert manifest.runs[-1].duplicates == len(first[camera].files)
        for name, entry in first[camera].files.items():
            assert manifest.files[name].landed == entry.landed

    code, event = events_json(layout, "ball_r-100")
    assert (code, event["complete"], event["totals"]["landed"]) == (0, True, 20)
    assert all(camera["runs"] == 2 for camera in event["cameras"].values())


def test_a_manifest_after_a_receiver_restart_lands_on_a_new_authenticated_connection(
    tmp_path: Path,
) -> None:
    """With a shared key, cam02's receiver is killed (and restarted by `camxfer receivers`)
    while the event waits for frames 106.. that never come: the connection kept for the
    manifest is dead, so the manifest goes on a new one, which must prove the key as the
    run's connections did (it was refused: "this receiver requires a shared key")."""
    layout = make_layout(tmp_path / "fleet", CAMERAS)
    key = tmp_path / "keys" / "auth.key"
    key.parent.mkdir()
    auth.write_key(key)
    for camera in CAMERAS:
        write_frames(layout.src(camera), camera, range(100, 106))
    landed = layout.landed("cam02", "ball_k")
    with (
        receivers(layout, "--auth-key-file", str(key), workers=1) as recv,
        trigger_server(layout, "--auth-key-file", str(key), timeout=8),
    ):
        accepted = run(
            [
                "trigger",
                "--port",
                str(layout.zmq_port),
                "--frame-id",
                frame_name("cam01", 100),
                "--ball-id",
                "ball_k",
            ],
            cwd=layout.root,
        )
        assert accepted.returncode == 0, accepted.stderr
        wait_for(lambda: len(list(landed.glob("frame_*"))) == 6, 30, "cam02's frames 100..105")
        os.kill(receiver_pid(recv, layout.ports["cam02"]), signal.SIGKILL)
        recv.wait_log(f"listening on 127.0.0.1:{layout.ports['cam02']}", count=2)
        result = run(
            [
                "trigger",
                "--port",
                str(layout.zmq_port),
                "--status",
                "ball_k-100",
                "--wait",
                "--json",
                "--progress",
                "off",
            ],
            cwd=layout.root,
        )
    status = json.loads(result.stdout)
    assert status["cameras"]["cam02"]["manifest"] == "landed", status["cameras"]["cam02"]
    for camera in CAMERAS:
        manifest = manifest_of(layout, camera, "ball_k")
        assert sorted(manifest.files) == [frame_name(camera, n) for n in range(100, 106)]
