"""The disk's own write latency while a benchmark runs, measured beside it.

Responsible for: a probe process that writes 1 MiB with O_DIRECT (buffered where the
filesystem refuses it) and fdatasyncs it, every `--interval` seconds, into one file in a
given folder, and appends each latency to a log; and reading that log back as p50 / p99 /
max over a time window. The live mode runs it on the destination's filesystem, so a stall
of the disk (on a VM, of the host behind it) shows beside the frames it held up.
Not responsible for: the workload; the probe adds one 1 MiB write per interval to it.

Run: python -m bench.disk_probe FOLDER LOG [--interval S]; it stops on SIGTERM and removes
its file.
"""

from __future__ import annotations

import argparse
import mmap
import os
import signal
import time
from pathlib import Path
from typing import Any

from bench.dataset import MIB
from bench.stats import percentile

PROBE_NAME = ".disk-probe"
SLOTS = 16  # the probe rewrites 16 MiB in turn: a fresh block each time, no growing file


def probe(folder: Path, log: Path, interval: float, stop: list[bool]) -> None:
    path = folder / PROBE_NAME
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_DIRECT, 0o644)
    except OSError:
        fd = os.open(path, flags, 0o644)  # tmpfs and the like: buffered, still synced
    block = mmap.mmap(-1, MIB)  # page-aligned, as O_DIRECT wants
    block.write(os.urandom(MIB))
    try:
        with open(log, "a", buffering=1) as out:
            slot = 0
            while not stop:
                started = time.perf_counter()
                os.pwrite(fd, block, slot * MIB)
                os.fdatasync(fd)
                took = time.perf_counter() - started
                out.write(f"{time.time():.3f} {took * 1000:.2f}\n")
                slot = (slot + 1) % SLOTS
                time.sleep(max(0.0, interval - took))
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def summary(log: Path, start: float, end: float) -> dict[str, Any]:
    """p50 / p99 / max milliseconds of the probe's writes that began in [start, end]."""
    millis: list[float] = []
    if log.exists():
        for line in log.read_text().splitlines():
            when, took = line.split()
            if start <= float(when) - float(took) / 1000 <= end:
                millis.append(float(took))
    if not millis:
        return {"samples": 0}
    return {
        "samples": len(millis),
        "p50": round(percentile(millis, 0.5), 1),
        "p99": round(percentile(millis, 0.99), 1),
        "max": round(max(millis), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.append(True))
    probe(args.folder, args.log, args.interval, stop)


if __name__ == "__main__":
    main()
