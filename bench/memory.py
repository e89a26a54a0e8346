"""The memory mode: peak RSS of `camxfer send` and of each receiver worker, per data-set shape.

Responsible for: three shapes - 100 x 1 MiB, 20 x 64 MiB, 3000 x 100 KiB - each sent once
with the default settings; the sender's VmHWM sampled every 20 ms while it runs, each receiver
worker's VmHWM from /proc just before the receiver is stopped (workers are its children), the
same taken right after start-up (what importing costs before any file), and the verdict:
memory must not grow with file size or count.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.camxfer_runs import DEFAULT, read_stats
from bench.dataset import KIB, MIB, Dataset, make_dataset, verify_copy
from bench.destinations import fresh_dest
from bench.measure import RepContext
from bench.netns import LOOPBACK
from bench.procs import BenchError, Proc, free_port, vm_hwm_kib, wait_listening
from bench.report import Target, below

SHAPES = ((100, MIB), (20, 64 * MIB), (3000, 100 * KIB))
QUICK_SHAPES = ((20, MIB), (3, 64 * MIB), (300, 100 * KIB))
WORKER_GOAL_MIB = 64.0
SENDER_GOAL_MIB = 128.0


def _mib(kib: int) -> float:
    return kib / 1024


def _one(data: Dataset, workdir: Path) -> dict[str, Any]:
    dest = fresh_dest(workdir, "memory")
    ctx = RepContext(data.root, dest, free_port(), LOOPBACK.recv_host, workdir, data.count)
    logs = workdir / "logs"
    receiver = Proc(DEFAULT.receiver_argv(ctx), logs, "memory-recv")
    sender = None
    try:
        wait_listening(ctx.port, receiver)
        deadline = time.monotonic() + 10  # the parent listens before every worker has started
        while len(receiver.children()) < DEFAULT.worker_count and time.monotonic() < deadline:
            time.sleep(0.02)
        idle = {pid: vm_hwm_kib(pid) for pid in receiver.children()}
        sender = Proc(DEFAULT.sender_argv(ctx), logs, "memory-send")
        sent, sender_peak = sender.wait_watching_memory(600)
        workers = {pid: vm_hwm_kib(pid) for pid in receiver.children()}
        parent = vm_hwm_kib(receiver.pid)
    finally:
        if sender is not None:
            sender.stop()
        receiver.stop()
    error, _extra = read_stats(sender.stdout())
    if sent.returncode != 0 and error is None:
        error = f"sender exited with {sent.returncode}: {sender.stderr_tail()}"
    error = error or verify_copy(data, dest / "bench")
    shutil.rmtree(dest, ignore_errors=True)
    return {
        "dataset": data.description,
        "files": data.count,
        "bytes": data.total_bytes,
        "verified": error is None,
        "error": error,
        "sender_peak_mib": round(_mib(sender_peak), 1),
        "receiver_parent_peak_mib": round(_mib(parent), 1),
        "worker_peak_mib": [round(_mib(kib), 1) for kib in workers.values()],
        "worker_after_startup_mib": [round(_mib(idle.get(pid, 0)), 1) for pid in workers],
    }


def run(workdir: Path, *, quick: bool) -> tuple[dict[str, Any], list[Target]]:
    rows = []
    for count, size in QUICK_SHAPES if quick else SHAPES:
        label = f"{count} x {size // MIB} MiB" if size >= MIB else f"{count} x {size // KIB} KiB"
        print(f"  .. memory {label}", file=sys.stderr, flush=True)
        data = make_dataset(workdir / "memory" / "src", count, size, size, description=label)
        try:
            rows.append(_one(data, workdir))
        except (BenchError, TimeoutError) as exc:
            rows.append({"dataset": label, "verified": False, "error": str(exc)})
    print(f"== memory, loopback, {DEFAULT.flags}: peak RSS (VmHWM) in MiB")
    print(f"  {'data set':<18} {'sender':>8} {'recv parent':>12} {'workers (idle -> peak)':<34} ok")
    for row in rows:
        if not row["verified"]:
            print(f"  {row['dataset']:<18} FAILED: {row['error']}")
            continue
        pairs = ", ".join(
            f"{a:.0f}->{b:.0f}"
            for a, b in zip(row["worker_after_startup_mib"], row["worker_peak_mib"], strict=True)
        )
        print(
            f"  {row['dataset']:<18} {row['sender_peak_mib']:>8.1f} "
            f"{row['receiver_parent_peak_mib']:>12.1f} {pairs:<34} verified"
        )
    print()
    good = [row for row in rows if row["verified"]]
    worst_worker = max((max(r["worker_peak_mib"], default=0.0) for r in good), default=None)
    worst_sender = max((r["sender_peak_mib"] for r in good), default=None)
    targets = [
        below("memory", "receiver worker peak RSS (worst shape)", worst_worker, WORKER_GOAL_MIB,
              "MiB"),
        below("memory", "sender peak RSS (worst shape)", worst_sender, SENDER_GOAL_MIB, "MiB"),
    ]  # fmt: skip
    return {"settings": DEFAULT.flags, "shapes": rows}, targets
