"""The live mode: cameras writing frames in real time, a continuous `camxfer send` per camera.

Responsible for: one live run - simulated cameras (`camxfer.tools.live_camera.run_live` in a
thread, random-byte frames of 1-2 MiB, a ring of 5 s per camera) writing into ring folders,
`camxfer receivers` (one per camera) and one continuous `camxfer send` per camera; measuring
per frame complete-to-landed latency (the camera's FrameCompletion.closed_wall to the moment
the final name appears at the destination, seen by inotify: the data is fsynced by then, only
the folder fsync is still to come), the backlog each second (frames closed minus frames
landed) and whether it grows; checking every landed frame's bytes. If the machine cannot
keep up with the asked cameras, it tries again with half as many and reports both.
Also runs the trigger-to-first-byte measure (`bench.trigger`), and `bench.disk_probe` on the
destination's filesystem during the capture: the disk's own write latency, beside the frames'.
Not responsible for: writing frames (camxfer.tools.live_camera).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from bench import trigger
from bench.dataset import MIB
from bench.destinations import mark_top_dir
from bench.disk_probe import summary as disk_probe_summary
from bench.fleet import (
    CAMXFER,
    RECEIVER_WORKERS,
    camera_names,
    check_landed,
    start_receivers,
    write_config,
)
from bench.procs import BenchError, Proc
from bench.report import Target, below
from bench.stats import percentile
from bench.watch import ArrivalWatcher
from camxfer.frames import frame_number
from camxfer.tools.live_camera import FrameCompletion, LiveSettings, LiveSummary, run_live

POOL_FRAMES = 8  # distinct frames per camera, written in turn
RING_SECONDS = 5.0
SENDER_START_S = 2.0  # senders import, list the (empty) folder and set up inotify
DRAIN_S = 20.0  # after the cameras stop, how long the senders may take to catch up
P99_GOAL_MS = 50.0


def _slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of backlog over time, frames per second."""
    if len(samples) < 3:
        return 0.0
    xs = np.array([t for t, _ in samples])
    ys = np.array([b for _, b in samples], dtype=float)
    return float(np.polyfit(xs - xs[0], ys, 1)[0])


def live_run(workdir: Path, cameras: int, fps: float, seconds: float, conns: int) -> dict[str, Any]:
    names = camera_names(cameras)
    root = workdir / "live" / f"{cameras}x{fps:g}"
    rings = {camera: root / "ring" / camera for camera in names}
    dest = root / "dest"
    # Cameras and receivers are separate hosts in a fleet: here, let ext4 put each ring and
    # the destination in block groups of their own, so creating a landed frame does not
    # scan past the frames a ring just deleted (see bench/destinations.py).
    for top in (root, root / "ring"):
        top.mkdir(parents=True, exist_ok=True)
        mark_top_dir(top)
    rng = np.random.default_rng(7)
    pools = {
        c: [rng.bytes(int(rng.integers(MIB, 2 * MIB + 1))) for _ in range(POOL_FRAMES)]
        for c in names
    }
    pool_digests = {c: [xxhash.xxh3_128_digest(f) for f in pools[c]] for c in names}
    ports = write_config(root / "camera_config.json", rings, dest)
    logs = workdir / "logs"
    settings = LiveSettings(fps=fps, ring=int(RING_SECONDS * fps))
    completions: list[FrameCompletion] = []
    samples: list[tuple[float, int, int]] = []  # (t since start, written, landed)
    outcome: dict[str, Any] = {}
    senders: list[Proc] = []
    disk_probe: Proc | None = None
    receivers = start_receivers(root / "camera_config.json", ports, logs, f"live-recv-{cameras}")
    own_cpu = resource.getrusage(resource.RUSAGE_SELF)
    capture_s = drained_s = 0.0
    try:
        for camera in names:
            rings[camera].mkdir(parents=True, exist_ok=True)
            argv = [*CAMXFER, "send", "--src-dir", str(rings[camera]), "--port"]
            argv += [str(ports[camera]), "--dest-path", camera, "--json-stats"]
            argv += ["--conns", str(conns)]
            senders.append(Proc(argv, logs, f"live-{cameras}-send-{camera}"))
        time.sleep(SENDER_START_S)
        for proc in senders:
            if not proc.running():
                raise BenchError(f"{proc.label} exited at start: {proc.stderr_tail()}")
        stop = threading.Event()

        def cameras_body() -> None:
            try:
                outcome["summary"] = run_live(
                    rings, pools, settings, stop, duration=seconds, on_complete=completions.append
                )
            except Exception as exc:  # reported, and the run counts as failed
                outcome["error"] = f"cameras: {exc}"

        dest.mkdir(parents=True, exist_ok=True)
        probe_log = logs / f"live-{cameras}-disk-probe.log"
        probe_log.unlink(missing_ok=True)
        disk_probe = Proc(
            [sys.executable, "-m", "bench.disk_probe", str(dest), str(probe_log)],
            logs,
            f"live-{cameras}-disk-probe",
        )
        with ArrivalWatcher({camera: dest / camera for camera in names}) as watcher:
            began = time.time()
            thread = threading.Thread(target=cameras_body, name="live-cameras")
            thread.start()
            while thread.is_alive():
                thread.join(max(0.0, 1.0 - (time.time() - began) % 1.0))
                samples.append((time.time() - began, len(completions), watcher.landed_count()))
            capture_s = time.time() - began
            disk = disk_probe_summary(probe_log, began, began + capture_s)
            disk_probe.stop()
            deadline = time.time() + DRAIN_S
            while watcher.landed_count() < len(completions) and time.time() < deadline:
                time.sleep(0.1)
            drained_s = time.time() - began - capture_s
            landed = {c: dict(times) for c, times in watcher.landed.items()}
    finally:
        if disk_probe is not None:
            disk_probe.stop()
        sender_cpu = sum(proc.stop().cpu_s for proc in senders)
        receiver_cpu = receivers.stop().cpu_s
    cameras_cpu = _cpu_since(own_cpu)
    sender_stats = [_stats(proc) for proc in senders]

    latencies: list[float] = [
        (landed[c.camera][c.name] - c.closed_wall) * 1000
        for c in completions
        if c.name in landed.get(c.camera, {})
    ]
    problems: list[str] = []
    checked = 0
    for camera in names:
        expected = {
            c.name: pool_digests[camera][(frame_number(c.name) or 0) % POOL_FRAMES]
            for c in completions
            if c.camera == camera
        }
        count, found = check_landed(dest / camera, expected)
        checked += count
        problems += found
    written = len(completions)
    landed_total = sum(len(times) for times in landed.values())
    backlog = [(t, w - n) for t, w, n in samples]
    half = backlog[len(backlog) // 2 :]
    slope = _slope(backlog)
    rate = cameras * fps
    summary: LiveSummary | None = outcome.get("summary")
    keeps_up = (
        "error" not in outcome
        and landed_total == written
        and not problems
        and slope < 0.02 * rate
        and (half[-1][1] if half else 0) < rate  # less than one second of frames behind
    )
    return {
        "cameras": cameras,
        "fps": fps,
        "seconds": round(capture_s, 1),
        "settings": f"one receiver per camera with {RECEIVER_WORKERS} worker; one sender per "
        f"camera with --conns {conns}",
        "frame_size": "1-2 MiB random bytes",
        "frames_written": written,
        "frames_landed": landed_total,
        "frames_checked": checked,
        "verified": not problems and "error" not in outcome,
        "problems": problems[:20] + ([outcome["error"]] if "error" in outcome else []),
        "camera_late": summary.late if summary else None,
        "camera_dropped": summary.dropped if summary else None,
        "mb_per_s_written": round(summary.bytes / summary.seconds / 1e6, 1) if summary else None,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies, default=0.0), 1),
            "mean": round(statistics.fmean(latencies), 1) if latencies else 0.0,
        },
        "backlog": [{"t": round(t, 1), "frames": b} for t, b in backlog],
        "backlog_slope_frames_per_s": round(slope, 2),
        "backlog_max": max((b for _, b in backlog), default=0),
        "drain_seconds": round(drained_s, 2),
        "keeps_up": keeps_up,
        # CPU seconds per second of the run (capture + drain); the machine has os.cpu_count().
        "cpu_per_s": {
            "senders": round(sender_cpu / (capture_s + drained_s), 2),
            "receivers": round(receiver_cpu / (capture_s + drained_s), 2),
            "cameras_and_harness": round(cameras_cpu / (capture_s + drained_s), 2),
        },
        "sender_stats": sender_stats,
        # The disk's own latency meanwhile: 1 MiB O_DIRECT + fdatasync every 0.1 s, in dest.
        "disk_probe_ms": disk,
    }


def _cpu_since(before: resource.struct_rusage) -> float:
    now = resource.getrusage(resource.RUSAGE_SELF)
    return (now.ru_utime - before.ru_utime) + (now.ru_stime - before.ru_stime)


def _stats(proc: Proc) -> dict[str, Any]:
    lines = [line for line in proc.stdout().splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"no --json-stats: {proc.stderr_tail()}"}
    stats = json.loads(lines[-1])
    keys = ("ok", "files", "mb_per_s", "failed", "vanished", "missing", "retries", "latency_ms")
    return {key: stats[key] for key in keys}


def _print_run(run: dict[str, Any]) -> None:
    lat = run["latency_ms"]
    verdict = "keeps up" if run["keeps_up"] else "DOES NOT keep up"
    print(
        f"  {run['cameras']} cameras x {run['fps']:g} fps x {run['frame_size']}, "
        f"{run['seconds']:.0f} s ({run['mb_per_s_written']} MB/s written): {verdict}\n"
        f"    settings: {run['settings']}\n"
        f"    frames written {run['frames_written']}, landed {run['frames_landed']}, "
        f"verified {run['frames_checked']} ({'ok' if run['verified'] else 'FAILED'}); "
        f"cameras late {run['camera_late']}, dropped {run['camera_dropped']}\n"
        f"    complete -> landed: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
        f"max {lat['max']:.1f} ms\n"
        f"    backlog (frames closed - landed): max {run['backlog_max']}, "
        f"slope {run['backlog_slope_frames_per_s']:+.2f} frames/s, "
        f"drained {run['drain_seconds']:.1f} s after the cameras stopped\n"
        f"    backlog each second: {' '.join(str(b['frames']) for b in run['backlog'])}\n"
        f"    CPU seconds per second: senders {run['cpu_per_s']['senders']}, receivers "
        f"{run['cpu_per_s']['receivers']}, cameras + harness "
        f"{run['cpu_per_s']['cameras_and_harness']} (of {os.cpu_count()} CPUs)"
    )
    disk = run.get("disk_probe_ms") or {}
    if disk.get("samples"):
        print(
            f"    the disk meanwhile (1 MiB O_DIRECT write + fdatasync every 0.1 s): "
            f"p50 {disk['p50']:.1f} ms, p99 {disk['p99']:.1f} ms, max {disk['max']:.1f} ms"
        )
    p99s = [s["latency_ms"]["p99"] for s in run["sender_stats"] if "latency_ms" in s]
    if p99s:
        print(f"    senders' own ready -> acked p99: {', '.join(f'{p:.0f}' for p in p99s)} ms")
    for problem in run["problems"][:5]:
        print(f"    problem: {problem}")


def run(
    workdir: Path, *, cameras: int, fps: float, seconds: float, conns: int, quick: bool
) -> tuple[dict[str, Any], list[Target]]:
    if quick:
        cameras, fps = min(cameras, 2), min(fps, 10.0)
    print(f"== live, loopback: {cameras} x {fps:g} fps for {seconds:g} s", flush=True)
    runs = []
    for attempt in (cameras, cameras // 2):
        if attempt < 1 or (runs and runs[-1]["keeps_up"]):
            break
        print(f"  .. live {attempt} cameras x {fps:g} fps", file=sys.stderr, flush=True)
        try:
            runs.append(live_run(workdir, attempt, fps, seconds, conns))
        except (BenchError, TimeoutError) as exc:
            runs.append({"cameras": attempt, "fps": fps, "keeps_up": False, "error": str(exc)})
            print(f"  {attempt} cameras x {fps:g} fps: FAILED: {exc}")
            continue
        _print_run(runs[-1])
    trig = trigger.run(workdir, cameras=cameras, triggers=2 if quick else 5)
    trigger.print_result(trig)
    print()
    first = runs[0]
    measured = "error" not in first and first["frames_landed"] > 0
    targets = [
        Target(
            "live",
            f"{first['cameras']} x {first['fps']:g} fps without backlog growth",
            first.get("backlog_slope_frames_per_s"),
            "keeps up",
            first["keeps_up"] if "error" not in first else None,
            "frames/s",
        ),
        below(
            "live",
            "p99 complete -> landed",
            first["latency_ms"]["p99"] if measured else None,
            P99_GOAL_MS,
            "ms",
        ),
        below(
            "live",
            "trigger -> first byte (median)",
            trig.get("first_byte_ms_median"),
            trigger.GOAL_MS,
            "ms",
        ),
    ]
    return {"runs": runs, "trigger": trig}, targets
