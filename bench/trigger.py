"""Trigger to first byte: from a ZMQ trigger to the first frame reaching the destination.

Responsible for: a ring of finished frames per camera (backdated; the last BACKLOG random
1-2 MiB frames, and before them older ones of 1 KiB, as many as a minute at 30 fps: the
trigger server lists the whole ring at every trigger, so its size is part of the measure), the
fleet's receivers, `camxfer senders --zmq` serving triggers, and for each of a few triggers
(each a new ball id, so a new event): the time from just before TriggerClient.trigger() to
  - first byte: the first write into a file the receiver is landing in any camera's
    destination (its unnamed file; a named temporary's creation where there is none), and
  - first frame: the first final name (landed: fsynced and linked),
then the whole event (every camera's frames landed), and checking every landed frame.
The destination folders `<dest>/<ball>/<camera>` are made before each trigger so inotify can
watch them; the receiver's mkdir then finds them (a few microseconds it does not spend).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.dataset import MIB, frame_file_name, make_dataset
from bench.fleet import CAMXFER, camera_names, check_landed, start_receivers, write_config
from bench.procs import Proc, free_port, wait_listening
from bench.watch import ArrivalWatcher
from camxfer.fleet.trigger_client import TriggerClient

GOAL_MS = 50.0
RING = 1800  # frames per camera: a minute at 30 fps
BACKLOG = 20  # the newest frames, 1-2 MiB each; the older ones are 1 KiB
FIRST = 5  # the triggered frame: the 5th of the backlog
PER_TRIGGER = 10  # frames per camera per trigger (--max-files)
OLDER_BYTES = 1024


def run(workdir: Path, *, cameras: int, triggers: int) -> dict[str, Any]:
    names = camera_names(cameras)
    root = workdir / "live" / "trigger"
    rings = {camera: root / "ring" / camera for camera in names}
    older = RING - BACKLOG
    datasets = {
        camera: make_dataset(
            rings[camera], BACKLOG, MIB, 2 * MIB, seed=i, camera=camera, first=older
        )
        for i, camera in enumerate(names, start=1)
    }
    for camera in names:
        _write_older_frames(rings[camera], camera, older)
    dest = root / "dest"
    config = root / "camera_config.json"
    ports = write_config(config, rings, dest)
    logs = workdir / "logs"
    zmq_port = free_port()
    receivers = start_receivers(config, ports, logs, "trigger-receivers")
    server = None
    rows: list[dict[str, Any]] = []
    try:
        argv = [*CAMXFER, "senders", "--config", str(config), "--zmq", "--zmq-bind"]
        argv += ["127.0.0.1", "--zmq-port", str(zmq_port), "--max-files", str(PER_TRIGGER)]
        server = Proc(argv, logs, "trigger-senders")
        wait_listening(zmq_port, server)
        frame_id = datasets[names[0]].names[FIRST]
        with TriggerClient("127.0.0.1", zmq_port, timeout=10.0) as client:
            for index in range(triggers):
                ball = f"ball{index:03d}"
                rows.append(_one_trigger(client, frame_id, ball, dest, names))
                time.sleep(0.5)
    finally:
        if server is not None:
            server.stop()
        receivers.stop()
    problems: list[str] = []
    for row in rows:
        for camera in names:
            wanted = datasets[camera].names[FIRST : FIRST + PER_TRIGGER]
            expected = dict(zip(datasets[camera].names, datasets[camera].digests, strict=True))
            count, found = check_landed(dest / row["ball"] / camera, expected)
            if count != len(wanted):
                found.append(f"{row['ball']}/{camera}: {count} of {len(wanted)} frames landed")
            problems += found
    firsts = [r["first_byte_ms"] for r in rows if r["first_byte_ms"] is not None]
    frames = [r["first_frame_ms"] for r in rows if r["first_frame_ms"] is not None]
    return {
        "cameras": cameras,
        "frames_per_camera": PER_TRIGGER,
        "ring_frames": RING,
        "triggers": rows,
        "verified": not problems and len(firsts) == triggers,
        "problems": problems[:20],
        "first_byte_ms_median": round(statistics.median(firsts), 1) if firsts else None,
        "first_byte_ms_max": round(max(firsts), 1) if firsts else None,
        "first_frame_ms_median": round(statistics.median(frames), 1) if frames else None,
    }


def _write_older_frames(ring: Path, camera: str, count: int) -> None:
    """Frames 0 .. count-1, small (they are listed, never sent), dated like the backlog."""
    data = bytes(OLDER_BYTES)
    stamp = min(p.stat().st_mtime for p in ring.iterdir())
    for number in range(count):
        path = ring / frame_file_name(number, camera)
        path.write_bytes(data)
        os.utime(path, (stamp, stamp))


def _one_trigger(
    client: TriggerClient, frame_id: str, ball: str, dest: Path, names: list[str]
) -> dict[str, Any]:
    folders = {camera: dest / ball / camera for camera in names}
    with ArrivalWatcher(folders, writes=True) as watcher:
        began = time.time()
        reply = client.trigger(frame_id, ball)
        replied = time.time()
        event = reply.get("event")
        status = client.wait(event, timeout=120, interval=0.2) if event else reply
        done = time.time()
        time.sleep(0.1)  # let the watcher read the last events
        first_bytes = list(watcher.first_byte.values())
        landed = [t for times in watcher.landed.values() for t in times.values()]

    def ms(t: float | None) -> float | None:
        return None if t is None else round((t - began) * 1000, 1)

    return {
        "ball": ball,
        "reply_ms": ms(replied),
        "first_byte_ms": ms(min(first_bytes, default=None)),
        "first_frame_ms": ms(min(landed, default=None)),
        "event_ms": ms(max(landed, default=done)),
        "state": status.get("state"),
    }


def print_result(result: dict[str, Any]) -> None:
    print(
        f"  trigger -> first byte ({result['cameras']} cameras, {result['frames_per_camera']} "
        f"frames each from rings of {result.get('ring_frames', BACKLOG):,}, "
        f"{len(result['triggers'])} triggers): median "
        f"{result['first_byte_ms_median']} ms, max {result['first_byte_ms_max']} ms; first "
        f"frame landed median {result['first_frame_ms_median']} ms; "
        f"{'verified' if result['verified'] else 'FAILED'}"
    )
    for row in result["triggers"]:
        print(
            f"    {row['ball']}: reply {row['reply_ms']} ms, first byte {row['first_byte_ms']} ms,"
            f" first frame {row['first_frame_ms']} ms, all frames {row['event_ms']} ms "
            f"({row['state']})"
        )
    for problem in result["problems"][:5]:
        print(f"    problem: {problem}")
