"""The embedded default, inventory/local: the whole fleet on this machine through the playbooks.

site.yml installs camxfer from a wheelhouse into a venv and starts the receivers and the
trigger server (no systemd here: `camxfer service`); generate.yml writes test frames;
trigger.yml sends a trigger and checks every frame landed byte-identical; a second deploy and a
--check run change nothing; status.yml and stop.yml report and stop the services.

The inventory is used as it is, except that its folders and ports are moved (extra vars) into
this test's own temporary folder and free ports, so a local fleet someone is running, or another
test session, is never touched; and the fleet gets a shared key and CURVE keys (made with
camxfer's own key commands) and TLS certificates, so every transfer here is authenticated
and encrypted end to end.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from camxfer.auth import write_key
from camxfer.fleet.curve import create_keypair
from camxfer.manifest import MANIFEST_NAME
from tests.fleet.helpers import (
    BIN,
    REPO,
    Played,
    free_port_run,
    kill_pid_files,
    listening,
    play,
)
from tests.integration.security_helpers import make_pki

pytestmark = pytest.mark.timeout(600)

INVENTORY = REPO / "inventory" / "local"
CAMERAS = ("camera01", "camera02", "camera03")
FRAMES = 14  # generated per camera
ASKED = 8  # frames per camera and event (camxfer_trigger_max_files)
FIRST = 3  # the event starts at frame 3: frames 3..10


@dataclass
class LocalFleet:
    root: Path
    extra_vars: dict
    base_port: int
    trigger_port: int
    metrics_port: int  # the receivers'; the trigger server's is the next one

    def play(self, playbook: str, *extra: str, check: bool = False) -> Played:
        return play(playbook, INVENTORY, self.extra_vars, extra=extra, check=check)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, install_vars: dict) -> Iterator[LocalFleet]:
    root = tmp_path_factory.mktemp("local-fleet")
    base_port = free_port_run(len(CAMERAS))
    trigger_port = free_port_run(1, start=base_port + 10)
    keys = root / "controller-keys"
    keys.mkdir()
    write_key(keys / "auth.key")
    server_public, server_secret = create_keypair(keys, "trigger-server")
    client_public, client_secret = create_keypair(keys, "operator")
    pki = make_pki(keys / "pki")
    metrics_port = free_port_run(2, start=trigger_port + 10)
    extra_vars = {
        **install_vars,
        "camxfer_root": str(root / "opt"),
        "camxfer_etc": str(root / "etc"),
        "camxfer_state_dir": str(root / "run"),
        "camxfer_log_dir": str(root / "log"),
        "camxfer_unit_dir": str(root / "systemd"),
        "camxfer_frames_root": str(root / "ring"),
        "camxfer_dest_root": str(root / "frames"),
        "camxfer_receiver_base_port": base_port,
        "camxfer_trigger_port": trigger_port,
        "camxfer_receiver_metrics_port": metrics_port,
        "camxfer_trigger_metrics_port": metrics_port + 1,
        "camxfer_trigger_max_files": ASKED,
        "camxfer_frames_count": FRAMES,
        "camxfer_frames_min_mb": 0.05,
        "camxfer_frames_max_mb": 0.1,
        "camxfer_frames_width": 640,
        "camxfer_frames_height": 480,
        "camxfer_auth_key_src": str(keys / "auth.key"),
        "camxfer_trigger_curve_secret_src": str(server_secret),
        "camxfer_trigger_curve_public_src": str(server_public),
        "camxfer_trigger_curve_client_keys_src": [str(client_public)],
        "camxfer_trigger_curve_client_secret_src": str(client_secret),
        "camxfer_receiver_tls_cert_src": str(pki.server_cert),
        "camxfer_receiver_tls_key_src": str(pki.server_key),
        "camxfer_trigger_tls_ca_src": str(pki.ca),
    }
    fleet = LocalFleet(root, extra_vars, base_port, trigger_port, metrics_port)
    try:
        yield fleet
    finally:
        fleet.play("stop")
        kill_pid_files(root / "run")  # in case stop.yml itself failed


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_site_installs_and_starts_every_service(fleet: LocalFleet) -> None:
    played = fleet.play("site")
    assert played.rc == 0, played.explain()
    assert played.changed()["localhost"] > 0
    venv = fleet.root / "opt" / "venv"
    assert (venv / "bin" / "camxfer").is_file()
    version = subprocess.run(
        [str(venv / "bin" / "camxfer"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("camxfer ")
    receivers = json.loads((fleet.root / "etc" / "receivers.json").read_text())
    assert receivers == {
        name: {
            "dest_path": str(fleet.root / "frames"),
            "host": "127.0.0.1",
            "port": fleet.base_port + index,
        }
        for index, name in enumerate(CAMERAS)
    }
    senders = json.loads((fleet.root / "etc" / "camera_config.json").read_text())
    assert senders["camera02"] == {
        "src": str(fleet.root / "ring" / "camera02"),
        "dest_path": str(fleet.root / "frames"),
        "host": "127.0.0.1",
        "port": fleet.base_port + 1,
    }
    for unit in ("camxfer-receiver.service", "camxfer-trigger.service"):
        exec_start = (fleet.root / "systemd" / unit).read_text()
        assert f"--auth-key-file {fleet.root}/etc/auth.key" in exec_start
    trigger_unit = (fleet.root / "systemd" / "camxfer-trigger.service").read_text()
    assert "--zmq-curve-clients" in trigger_unit and "--tls-ca" in trigger_unit
    assert "--tls-cert" in (fleet.root / "systemd" / "camxfer-receiver.service").read_text()
    etc = fleet.root / "etc"
    for secret in (
        etc / "auth.key",
        etc / "curve" / "server.key_secret",
        etc / "tls" / "receiver.key",
    ):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    assert sorted(p.name for p in (etc / "curve" / "clients").iterdir()) == ["operator.key"]
    for index in range(len(CAMERAS)):
        assert listening("127.0.0.1", fleet.base_port + index)
    assert listening("127.0.0.1", fleet.trigger_port)


def test_generate_then_trigger_lands_every_frame_whole(fleet: LocalFleet) -> None:
    played = fleet.play("generate")
    assert played.rc == 0, played.explain()
    for camera in CAMERAS:
        assert len(list((fleet.root / "ring" / camera).glob("*.jpg"))) == FRAMES
    # Through the command line, as an operator would run it.
    extra_vars = fleet.root / "extra-vars.json"
    extra_vars.write_text(json.dumps(fleet.extra_vars))
    frame_id = f"frame_camera01_{FIRST:09d}.jpg"
    command = [str(BIN / "camxfer"), "fleet", "trigger", "-i", str(INVENTORY)]
    command += ["-e", f"@{extra_vars}", "-e", f"frame_id={frame_id} ball_id=ball_local"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for camera in CAMERAS:
        assert f"{camera}: {ASKED}/{ASKED} frames landed identical" in result.stdout
        landed = fleet.root / "frames" / "ball_local" / camera
        names = sorted(p.name for p in landed.iterdir() if p.name != MANIFEST_NAME)
        assert (landed / MANIFEST_NAME).is_file()  # the camera run's manifest
        assert names == [f"frame_{camera}_{n:09d}.jpg" for n in range(FIRST, FIRST + ASKED)]
        for name in names:
            assert sha256(landed / name) == sha256(fleet.root / "ring" / camera / name)


def test_second_deploy_changes_nothing(fleet: LocalFleet) -> None:
    played = fleet.play("site")
    assert played.rc == 0, played.explain()
    assert played.changed() == {"localhost": 0}, played.explain()


def test_check_mode_changes_nothing(fleet: LocalFleet) -> None:
    config = fleet.root / "etc" / "camera_config.json"
    before = config.stat().st_mtime_ns
    played = fleet.play("site", check=True)
    assert played.rc == 0, played.explain()
    assert played.changed() == {"localhost": 0}, played.explain()
    assert config.stat().st_mtime_ns == before


def test_trigger_fails_naming_a_damaged_frame(fleet: LocalFleet) -> None:
    damaged = fleet.root / "frames" / "ball_local" / "camera02" / f"frame_camera02_{FIRST:09d}.jpg"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    played = fleet.play("trigger", f"frame_id=frame_camera01_{FIRST:09d}.jpg ball_id=ball_local")
    assert played.rc != 0
    assert f"camera02: {ASKED - 1}/{ASKED} frames landed identical; 1 different" in played.output
    assert damaged.name in played.output


def test_trigger_without_event_says_how(fleet: LocalFleet) -> None:
    played = fleet.play("trigger")
    assert played.rc != 0
    assert "-e frame_id=" in played.output


def test_cleanup_needs_confirmation_and_clears_one_camera(fleet: LocalFleet) -> None:
    landed = fleet.root / "frames" / "ball_local"
    refused = fleet.play("cleanup", "camera=camera01")
    assert refused.rc != 0 and "-e confirm=yes" in refused.output
    assert (landed / "camera01").is_dir()
    cleared = fleet.play("cleanup", "confirm=yes camera=camera01")
    assert cleared.rc == 0, cleared.explain()
    assert not (landed / "camera01").exists()
    assert len(list((landed / "camera02").glob("*.jpg"))) == ASKED  # other cameras keep theirs
    assert len(list((fleet.root / "ring" / "camera01").iterdir())) == FRAMES  # sources stay


def test_status_then_stop(fleet: LocalFleet) -> None:
    status = fleet.play("status")
    assert status.rc == 0, status.explain()
    assert "ball_local-3" in status.output  # the trigger server's recent events
    # The one table of `camxfer status --json` from every host: services, ports, cameras.
    assert re.search(r"localhost +camxfer-receiver +up \(pid \d+\)", status.output)
    assert f"metrics :{fleet.metrics_port} answers" in status.output
    assert f"trigger :{fleet.trigger_port} answers" in status.output
    assert re.search(r"localhost +camera camera01 +backlog \d+", status.output)
    assert re.search(r"localhost +event ball_local-3 +done", status.output)
    # The metrics endpoints the roles turned on count the event's frames.
    for port, name in (
        (fleet.metrics_port, "camxfer_receiver_files_total"),
        (fleet.metrics_port + 1, "camxfer_sender_files_total"),
    ):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        counted = {
            sample.labels["camera"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }
        assert counted == dict.fromkeys(CAMERAS, ASKED), text
    stopped = fleet.play("stop")
    assert stopped.rc == 0, stopped.explain()
    assert stopped.changed()["localhost"] >= 2
    assert not listening("127.0.0.1", fleet.trigger_port)
    assert not any(listening("127.0.0.1", fleet.base_port + i) for i in range(len(CAMERAS)))
    assert fleet.play("status").rc != 0
    again = fleet.play("stop")
    assert again.rc == 0 and again.changed() == {"localhost": 0}, again.explain()
