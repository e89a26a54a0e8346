"""How many connections a trigger server opens per camera when neither --conns nor the camera
says: 8 shared by the host's cameras, at least 2 each (one camera: 8, three: 2 each), and
--conns or a camera's conns when set. Counted from the receivers' log, after a real event."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet_helpers import make_layout, receivers, trigger_server, write_frames

from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name

pytestmark = pytest.mark.timeout(90)


def connections_per_event(root: Path, cameras: list[str], *extra: str) -> int:
    """Connections the receivers saw for one event of 10 frames per camera."""
    layout = make_layout(root, cameras)
    for camera in cameras:
        write_frames(layout.src(camera), camera, range(1, 16))
    with receivers(layout) as recv, trigger_server(layout, *extra):
        client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=5.0)
        reply = client.trigger(frame_name(cameras[0], 1), "ball_conns")
        assert client.wait(reply["event"], timeout=30)["state"] == "done"
        return recv.text().count(": connected")


def test_one_camera_gets_the_whole_share(tmp_path: Path) -> None:
    assert connections_per_event(tmp_path, ["cam01"]) == 8


def test_three_cameras_share_it_two_each(tmp_path: Path) -> None:
    assert connections_per_event(tmp_path, ["cam01", "cam02", "cam03"]) == 3 * 2


def test_conns_sets_them_per_camera(tmp_path: Path) -> None:
    assert connections_per_event(tmp_path, ["cam01", "cam02", "cam03"], "--conns", "3") == 9
