"""A benchmark fleet on this machine: a camera_config.json and `camxfer receivers` for it.

Responsible for: writing the config (one camera per ring folder, each with its own free port
on 127.0.0.1, all landing under one destination), starting the supervised receivers
(`camxfer receivers --workers 1`: one single-process receiver per camera, as six cameras on
two cores leave no room for more) and waiting until every one listens; and checking landed
frames against the bytes the cameras wrote.
Not responsible for: the senders or the cameras (live, trigger).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.dataset import digest_of
from bench.procs import Proc, free_port, wait_listening
from camxfer.manifest import MANIFEST_NAME

CAMXFER = (sys.executable, "-m", "camxfer")


def camera_names(count: int) -> list[str]:
    return [f"camera{index:02d}" for index in range(1, count + 1)]


def write_config(path: Path, rings: Mapping[str, Path], dest: Path) -> dict[str, int]:
    """Write camera_config.json; returns each camera's receiver port."""
    ports = {camera: free_port() for camera in rings}
    config = {
        camera: {"src": str(ring), "dest_path": str(dest), "host": "127.0.0.1", "port": port}
        for (camera, ring), port in zip(rings.items(), ports.values(), strict=True)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1))
    return ports


RECEIVER_WORKERS = 1  # per camera: a 30 fps stream never needs more than one process


def start_receivers(config: Path, ports: Mapping[str, int], logs: Path, label: str) -> Proc:
    argv = [*CAMXFER, "receivers", "--config", str(config), "--workers", str(RECEIVER_WORKERS)]
    receivers = Proc(argv, logs, label)
    for port in ports.values():
        wait_listening(port, receivers)
    return receivers


def check_landed(folder: Path, expected: Mapping[str, bytes]) -> tuple[int, list[str]]:
    """(files checked, problems) for the frames in `folder` against name -> digest."""
    problems = []
    checked = 0
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name == MANIFEST_NAME:
            continue  # the camera run's manifest (camxfer verify checks it)
        if path.name.startswith("."):
            problems.append(f"{path.name}: temporary file left behind")
            continue
        digest = expected.get(path.name)
        checked += 1
        if digest is None:
            problems.append(f"{path.name}: not a frame that was written")
        elif digest_of(path) != digest:
            problems.append(f"{path.name}: content differs")
    return checked, problems
