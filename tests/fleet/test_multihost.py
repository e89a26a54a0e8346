"""The fleet across real hosts: three network namespaces with their own addresses, sshd and
private /opt/camxfer, /srv/camxfer, ... (tests/fleet/netns_lab.sh), deployed over ssh with an
inventory of inventory/example's shape (its group_vars and host_vars; only the addresses are
the lab's).

Deploy, make frames, trigger: frames travel from cam1's and cam2's ring folders to sto1 over
the lab network and must be byte-identical there (read straight from each host's private
folders). A second deploy reports changed=0; --check changes nothing. The hosts have no
internet: camxfer comes from the wheelhouse the controller built.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from camxfer.manifest import MANIFEST_NAME
from tests.fleet.helpers import lab_address, lab_env, lab_private, listening, play

pytestmark = pytest.mark.timeout(900)

# inventory/example/host_vars: cam1 has camera01, camera02; cam2 has camera03 and camera04,
# camera04 with an explicit port and its own destination folder.
CAMERAS = {
    "camera01": ("cam1", 50001, "/srv/camxfer/frames"),
    "camera02": ("cam1", 50002, "/srv/camxfer/frames"),
    "camera03": ("cam2", 50003, "/srv/camxfer/frames"),
    "camera04": ("cam2", 50011, "/srv/camxfer/frames-disk2"),
}
FRAMES = 12
ASKED = 8
FIRST = 2
DEPLOY_VARS = {"camxfer_trigger_max_files": ASKED, "camxfer_receiver_workers": 2}
FRAME_VARS = {
    "camxfer_frames_count": FRAMES,
    "camxfer_frames_min_mb": 0.05,
    "camxfer_frames_max_mb": 0.1,
    "camxfer_frames_width": 640,
    "camxfer_frames_height": 480,
}


@pytest.fixture(scope="module")
def lab(netns_lab: Path, install_vars: dict) -> tuple[Path, dict]:
    return netns_lab, {**install_vars, **DEPLOY_VARS}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deploy_over_ssh_starts_every_service(lab: tuple[Path, dict]) -> None:
    inventory, extra_vars = lab
    played = play("site", inventory, extra_vars, env=lab_env())
    assert played.rc == 0, played.explain()
    assert all(played.changed()[host] > 0 for host in ("cam1", "cam2", "sto1")), played.changed()
    for host in ("cam1", "cam2", "sto1"):
        assert (lab_private(host, "/opt/camxfer/venv/bin/camxfer")).is_file()
    assert not Path("/opt/camxfer/venv").exists()  # nothing leaked onto the real root
    for _camera, (_host, port, _dest) in CAMERAS.items():
        assert listening(lab_address("sto1"), port)
    for host in ("cam1", "cam2"):
        assert listening(lab_address(host), 5555)
    config = lab_private("cam2", "/etc/camxfer/camera_config.json").read_text()
    assert '"host": "10.67.0.21"' in config and '"port": 50011' in config


def test_trigger_moves_frames_across_hosts_byte_identical(lab: tuple[Path, dict]) -> None:
    inventory, extra_vars = lab
    generated = play("generate", inventory, {**extra_vars, **FRAME_VARS}, env=lab_env())
    assert generated.rc == 0, generated.explain()
    event = f"frame_id=frame_camera01_{FIRST:09d}.jpg ball_id=ball_lab"
    played = play("trigger", inventory, extra_vars, extra=(event,), env=lab_env())
    assert played.rc == 0, played.explain()
    for camera, (host, _port, dest) in CAMERAS.items():
        assert f"{camera}: {ASKED}/{ASKED} frames landed identical" in played.output
        landed = lab_private("sto1", f"{dest}/ball_lab/{camera}")
        source = lab_private(host, f"/srv/camxfer/ring/{camera}")
        names = sorted(p.name for p in landed.iterdir() if p.name != MANIFEST_NAME)
        assert names == [f"frame_{camera}_{n:09d}.jpg" for n in range(FIRST, FIRST + ASKED)]
        for name in names:
            assert sha256(landed / name) == sha256(source / name), f"{camera}/{name} differs"


def test_second_deploy_changes_nothing(lab: tuple[Path, dict]) -> None:
    inventory, extra_vars = lab
    played = play("site", inventory, extra_vars, env=lab_env())
    assert played.rc == 0, played.explain()
    assert played.changed() == {"cam1": 0, "cam2": 0, "sto1": 0}, played.explain()


def test_check_mode_changes_nothing(lab: tuple[Path, dict]) -> None:
    inventory, extra_vars = lab
    config = lab_private("sto1", "/etc/camxfer/receivers.json")
    before = config.stat().st_mtime_ns
    played = play("site", inventory, extra_vars, check=True, env=lab_env())
    assert played.rc == 0, played.explain()
    assert played.changed() == {"cam1": 0, "cam2": 0, "sto1": 0}, played.explain()
    assert config.stat().st_mtime_ns == before


def test_missing_frame_on_the_storage_host_fails_the_trigger(lab: tuple[Path, dict]) -> None:
    inventory, extra_vars = lab
    gone = lab_private(
        "sto1", f"/srv/camxfer/frames-disk2/ball_lab/camera04/frame_camera04_{FIRST + 1:09d}.jpg"
    )
    gone.unlink()
    event = f"frame_id=frame_camera01_{FIRST:09d}.jpg ball_id=ball_lab"
    played = play("trigger", inventory, extra_vars, extra=(event,), env=lab_env())
    assert played.rc != 0
    assert f"camera04: {ASKED - 1}/{ASKED} frames landed identical; 1 missing ({gone.name})" in (
        played.output
    )
    assert f"camera01: {ASKED}/{ASKED} frames landed identical" in played.output
