"""bench/disk_probe.py: a real probe process writes and syncs in the folder it is given, logs
each write's latency, stops on SIGTERM leaving nothing behind, and its log reads back as
percentiles over a time window."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.disk_probe import summary
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_probe_logs_synced_writes_and_removes_its_file(tmp_path: Path) -> None:
    folder, log = tmp_path / "dest", tmp_path / "probe.log"
    folder.mkdir()
    began = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.disk_probe", str(folder), str(log), "--interval", "0.02"],
        cwd=ROOT,
    )
    try:
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 5, 20, "writes")
        assert [p.name for p in folder.iterdir()] == [".disk-probe"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert list(folder.iterdir()) == []
    figures = summary(log, began, time.time())
    assert figures["samples"] >= 5
    assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]
    assert summary(log, began - 100, began - 50) == {"samples": 0}  # before it started


def test_summary_takes_the_writes_that_began_in_the_window(tmp_path: Path) -> None:
    log = tmp_path / "probe.log"
    # Each line: the time the write ended, and how long it took (ms).
    log.write_text("100.010 10.0\n101.300 300.0\n102.002 2.0\n200.001 1.0\n")
    assert summary(log, 100.0, 102.5) == {"samples": 3, "p50": 10.0, "p99": 300.0, "max": 300.0}
    assert summary(tmp_path / "absent.log", 0, 1) == {"samples": 0}
