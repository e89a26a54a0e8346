"""The scan mode: what the sender's planner costs per look at a live ring folder, by ring size.

Responsible for: a real folder holding RING frames, a camera thread writing 30 fps into it
(each frame in 4 pieces, then closed; the oldest deleted, as a ring buffer does), and in this
thread the planner driven as `camxfer send` drives it (wait on the inotify watcher, scan on
news or every --poll-ms, every frame handed out treated as sent). Reports scans per second and
the CPU time of each scan (`time.thread_time`), so a change to listing or planning shows up as
a number, not a feeling. Not responsible for: sockets or landing (the other modes).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.report import Target
from camxfer.send.options import SendOptions
from camxfer.send.scan import Planner
from camxfer.send.watch import FolderWatcher

RINGS = (90, 1000, 5000)
QUICK_RINGS = (90, 1000)
FPS = 30.0
SECONDS = 3.0
PIECES = 4
FRAME_BYTES = 4096  # the bytes do not matter here: only names, sizes and events do


def _name(number: int) -> str:
    return f"frame_camera01_{number:09d}.jpg"


def _camera(folder: Path, first: int, ring: int, stop: threading.Event) -> int:
    """Write frames from `first` at FPS until `stop`; returns how many were written."""
    number = first
    started = time.monotonic()
    piece = b"x" * (FRAME_BYTES // PIECES)
    while not stop.is_set():
        with open(folder / _name(number), "wb", buffering=0) as frame:
            for _ in range(PIECES):
                frame.write(piece)
        (folder / _name(number - ring)).unlink(missing_ok=True)
        number += 1
        delay = started + (number - first) / FPS - time.monotonic()
        if delay > 0:
            stop.wait(delay)
    return number - first


def measure(workdir: Path, ring: int, seconds: float) -> dict[str, Any]:
    folder = workdir / "scan" / f"ring-{ring}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for number in range(ring):
        (folder / _name(number)).write_bytes(b"old")
    opts = SendOptions(src_dir=folder, start_at=_name(ring))
    watcher = FolderWatcher(folder, recursive=False)
    planner = Planner(opts, watcher)
    stop = threading.Event()
    written: list[int] = []
    camera = threading.Thread(target=lambda: written.append(_camera(folder, ring, ring, stop)))
    cpu: list[float] = []
    handed_out = 0
    try:
        camera.start()
        end = time.monotonic() + seconds
        last_scan = 0.0
        woke = True
        while time.monotonic() < end:
            now = time.monotonic()
            if woke or planner.waiting_for_completion or now - last_scan >= opts.poll_ms / 1000:
                began = time.thread_time()
                ready = planner.scan()
                cpu.append(time.thread_time() - began)
                last_scan = now
                for item in ready:
                    planner.mark_final(item)  # as if sent and acknowledged at once
                handed_out += len(ready)
            woke = watcher.poll(opts.poll_ms)
        stop.set()
        camera.join()
        # Untimed: hand out what the camera wrote after the last timed scan, so a row also
        # says whether the planner missed a frame.
        drain_end = time.monotonic() + 5.0
        while written and handed_out < written[0] and time.monotonic() < drain_end:
            watcher.poll(opts.poll_ms)
            for item in planner.scan():
                planner.mark_final(item)
                handed_out += 1
    finally:
        stop.set()
        camera.join()
        watcher.close()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "ring": ring,
        "frames_written": written[0] if written else 0,
        "frames_handed_out": handed_out,
        "scans_per_s": round(len(cpu) / seconds, 1),
        "scan_cpu_ms_median": round(statistics.median(cpu) * 1000, 3) if cpu else None,
        "scan_cpu_ms_mean": round(statistics.fmean(cpu) * 1000, 3) if cpu else None,
        "scan_cpu_ms_per_s": round(sum(cpu) * 1000 / seconds, 1),
    }


def run(workdir: Path, *, quick: bool) -> tuple[dict[str, Any], list[Target]]:
    print(f"== scan: the sender's planner on a live ring folder, 1 camera x {FPS:g} fps")
    rows = []
    for ring in QUICK_RINGS if quick else RINGS:
        print(f"  .. scan, ring of {ring}", file=sys.stderr, flush=True)
        rows.append(measure(workdir, ring, 1.0 if quick else SECONDS))
    print(f"  {'ring':>6} {'written':>8} {'sent':>6} {'scans/s':>8}  CPU per scan: median, mean")
    for row in rows:
        print(
            f"  {row['ring']:>6} {row['frames_written']:>8} {row['frames_handed_out']:>6} "
            f"{row['scans_per_s']:>8}  {row['scan_cpu_ms_median']} ms, "
            f"{row['scan_cpu_ms_mean']} ms = {row['scan_cpu_ms_per_s']} ms of CPU per second"
        )
    print(f"  (the load average now: {os.getloadavg()[0]:.1f})")
    return {"scan": rows}, []
