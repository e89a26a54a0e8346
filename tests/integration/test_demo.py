"""`camxfer demo`, the README's main command, runs the whole fleet and proves every frame.

Run here on a two-camera config with small frames, so it stays quick; the default config runs
the same code with six cameras.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.fleet_helpers import CAMXFER, ENV, MANIFEST_NAME, REPO, free_ports


def test_demo_lands_every_frame_of_a_live_event(tmp_path: Path) -> None:
    p1, p2, zmq_port = free_ports(3)
    config = tmp_path / "camera_config.json"
    config.write_text(
        json.dumps(
            {
                "camA": {"src": "ring/camA", "dest_path": "store/disk1", "port": p1},
                "camB": {"src": "ring/camB", "dest_path": "store/disk2", "port": p2},
            }
        )
    )
    result = subprocess.run(
        [
            *CAMXFER,
            "demo",
            "--config",
            str(config),
            "--fps",
            "20",
            "--count",
            "15",
            "--min-mb",
            "0.05",
            "--max-mb",
            "0.1",
            "--zmq-port",
            str(zmq_port),
            "--timeout",
            "60",
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "frames: 30/30 landed, 30 verified byte-identical" in result.stdout
    assert "result: OK" in result.stdout
    events = list((tmp_path / "store" / "disk1").iterdir())
    assert len(events) == 1  # one ball id folder
    for camera, disk in (("camA", "disk1"), ("camB", "disk2")):
        folder = tmp_path / "store" / disk / events[0].name / camera
        landed = sorted(p for p in folder.iterdir() if p.name != MANIFEST_NAME)
        assert len(landed) == 15
        assert all(p.read_bytes().endswith(b"\xff\xd9") for p in landed)
