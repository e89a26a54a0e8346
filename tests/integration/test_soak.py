"""Soak: every camera of a small fleet live at its frame rate, triggers back to back, for
minutes. Nothing may be lost, and neither the receivers nor the trigger server may grow.

Real processes throughout: `camxfer generate --live` writes frames into ring buffers,
`camxfer receivers` lands them, `camxfer senders --zmq` takes the triggers. Each trigger asks
for frames just ahead of the cameras, so every event moves live frames; the next trigger is
sent as soon as the previous event is done. Meanwhile the resident memory (RSS) and open
file descriptors of the receiver and trigger-server process trees are sampled. At the end:
every event done with every frame landed and byte-identical to the camera's copy, and RSS
and fds after the warm-up within a small bound of where they started. The figures are
printed (run with `-s` to see them).

CAMXFER_SOAK_SECONDS sets the load time (default 100 s, so the test takes about two minutes).
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import time
from pathlib import Path

import pytest
from fleet_helpers import (
    Proc,
    descendants,
    make_layout,
    receivers,
    sha256,
    start,
    trigger_server,
)

from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name
from camxfer.manifest import MANIFEST_NAME, parse_manifest

pytestmark = [pytest.mark.soak, pytest.mark.timeout(600)]

SOAK_SECONDS = float(os.environ.get("CAMXFER_SOAK_SECONDS") or 100)
CAMERAS = ["cam01", "cam02", "cam03"]
FPS = 10
EVENT_FRAMES = 10  # the trigger server's --max-files in fleet_helpers
RING = 300
RSS_BOUND = 16 << 20  # growth allowed after the warm-up, per process tree
FD_BOUND = 8


def tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def fd_count(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


def newest_frame(folder: Path) -> int | None:
    numbers = [
        int(match[1])
        for name in os.listdir(folder)
        if (match := re.fullmatch(r"frame_\w+?_(\d+)\.jpg", name))
    ]
    return max(numbers) if numbers else None


def growth(samples: list[int]) -> tuple[int, int, int]:
    """(after the warm-up, at the end, peak): the warm-up is the first quarter; the ends are
    medians of three samples, so one sample taken mid-event (a sender run's buffers) does
    not count as growth."""
    settled = samples[len(samples) // 4 :]
    return int(statistics.median(settled[:3])), int(statistics.median(settled[-3:])), max(settled)


def test_soak_live_cameras_back_to_back_triggers(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "fleet", CAMERAS)
    camera = start(
        "camxfer generate --live",
        [
            "generate", "--live", "--config", str(layout.config), "--fps", str(FPS),
            "--ring", str(RING), "--min-mb", "0.1", "--max-mb", "0.3", "--width", "640",
            "--height", "480", "--seed", "7", "--workers", "1",
        ],
        layout.root / "generate.log",
        layout.root,
    )  # fmt: skip
    samples: dict[str, dict[str, list[int]]] = {
        "receivers": {"rss": [], "fds": []},
        "trigger server": {"rss": [], "fds": []},
    }
    events = frames = verified = dropped = 0
    lost: list[str] = []
    try:
        with receivers(layout) as recv, trigger_server(layout, timeout=60) as trig:
            procs: dict[str, Proc] = {"receivers": recv, "trigger server": trig}
            client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=10)
            ring = layout.src(CAMERAS[0])
            newest = None
            wait_deadline = time.monotonic() + 60
            while newest is None and time.monotonic() < wait_deadline:
                newest = newest_frame(ring)
                time.sleep(0.2)
            assert newest is not None, camera.text()
            end = time.monotonic() + SOAK_SECONDS
            next_sample = 0.0
            while time.monotonic() < end:
                if time.monotonic() >= next_sample:
                    for name, proc in procs.items():
                        pids = tree(proc.pid)
                        samples[name]["rss"].append(rss_bytes(pids))
                        samples[name]["fds"].append(fd_count(pids))
                    next_sample = time.monotonic() + 2.0
                first = (newest_frame(ring) or 0) + 2  # just ahead of the cameras
                ball = f"soak{events:04d}"
                reply = client.trigger(frame_name(CAMERAS[0], first), ball)
                assert reply["ok"], reply
                status = client.wait(reply["event"], timeout=60)
                events += 1
                unwritten = 0
                for cam in CAMERAS:
                    landed = layout.landed(cam, ball)
                    names = sorted(os.listdir(landed)) if landed.exists() else []
                    if MANIFEST_NAME in names:  # the event's record: it lists what landed
                        names.remove(MANIFEST_NAME)
                        listed = parse_manifest((landed / MANIFEST_NAME).read_bytes()).files
                        if set(listed) != set(names):
                            lost.append(f"{ball}/{cam}: manifest lists {sorted(listed)}")
                    want = [frame_name(cam, n) for n in range(first, first + EVENT_FRAMES)]
                    # A frame the simulated camera dropped (it fell behind on a loaded
                    # machine) was never in the ring: missing, but not lost by camxfer.
                    absent = {n for n in want if not (layout.src(cam) / n).exists()}
                    unwritten += len(absent - set(names))
                    if set(want) - set(names) - absent or not set(names) <= set(want):
                        lost.append(f"{ball}/{cam}: {sorted(set(want) - set(names) - absent)}")
                    for name in names:
                        frames += 1
                        source = layout.src(cam) / name
                        with contextlib.suppress(FileNotFoundError):
                            digest = sha256(source)
                            if digest != sha256(landed / name):
                                lost.append(f"{ball}/{cam}/{name}: bytes differ")
                            verified += 1
                assert status["state"] == "done" or unwritten, status
                dropped += unwritten
            assert camera.process.poll() is None, camera.text()
    finally:
        camera.stop()

    lines = [
        f"soak: {SOAK_SECONDS:g} s, {len(CAMERAS)} cameras at {FPS} fps, {events} events back "
        f"to back, {frames} frames landed ({verified} checked against the ring), "
        f"{len(lost)} lost ({dropped} never written: the simulated cameras fell behind)"
    ]
    for name, series in samples.items():
        rss_first, rss_last, rss_peak = growth(series["rss"])
        fd_first, fd_last, fd_peak = growth(series["fds"])
        lines.append(
            f"soak: {name}: RSS {rss_first / 2**20:.1f} -> {rss_last / 2**20:.1f} MiB "
            f"(peak {rss_peak / 2**20:.1f}), fds {fd_first} -> {fd_last} (peak {fd_peak}), "
            f"{len(series['rss'])} samples"
        )
        lines.append(
            f"soak: {name}: RSS MiB over time "
            + " ".join(f"{v / 2**20:.0f}" for v in series["rss"])
        )
        assert rss_last - rss_first <= RSS_BOUND, "\n".join(lines[-2:])
        assert fd_last - fd_first <= FD_BOUND, lines[-2]
    print("\n" + "\n".join(lines))
    assert lost == [], lost[:20]
    assert events >= 10 and verified >= frames // 2
