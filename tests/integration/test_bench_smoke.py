"""The benchmark harness runs end to end: one command measures, verifies and prints ratios.

Exercises bench/run.py --quick (a small data set, one repetition) on loopback with camxfer
(by command and by a ZMQ trigger to a warm `camxfer senders --zmq`), the sendfile+recv_into
baseline, cp, the peers (plain and durable), and the scan mode. No timing assertions: speed
lives in bench/.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, *args: str, timeout: float = 80) -> tuple[str, dict[str, Any]]:
    """bench/run.py with `args`, its work and JSON under tmp_path: (stdout, the JSON)."""
    figures = tmp_path / "bench.json"
    argv = [sys.executable, "bench/run.py", *args, "--workdir", str(tmp_path / "work")]
    result = subprocess.run(
        [*argv, "--json", str(figures)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(figures.read_text())


@pytest.mark.timeout(90)
def test_quick_bench_verifies_camxfer_and_prints_ratios(tmp_path: Path) -> None:
    stdout, figures = run_bench(tmp_path, "--quick", "--only", "camxfer,sendfile,cp,triggered")
    camxfer_rows = [line for line in stdout.splitlines() if line.startswith("  camxfer (")]
    assert camxfer_rows and all(" verified " in row for row in camxfer_rows), stdout
    assert "FAILED" not in stdout, stdout
    assert "ratios (camxfer MB/s / other MB/s" in stdout
    assert "sendfile+recv_into fsync" in stdout

    measured = {m["name"]: m for m in figures["bulk"]["loopback"]["measurements"]}
    camxfer = measured["camxfer (default)"]
    assert camxfer["verified"] and camxfer["mb_per_s"] > 0 and camxfer["files"] > 0
    assert {"cp -r", "cp -r + sync", "sendfile+recv_into fsync", "camxfer (tuned)"} <= set(measured)
    triggered = measured["camxfer (triggered)"]  # every frame landed byte-identical
    assert triggered["verified"] and triggered["files"] == camxfer["files"], triggered
    ratios = figures["bulk"]["loopback"]["ratios"]["camxfer (default)"]
    assert ratios["sendfile+recv_into fsync"] > 0 and ratios["cp -r"] > 0
    assert not list((tmp_path / "work").glob("bulk-src/*")), "the data set is removed afterwards"


@pytest.mark.timeout(60)
def test_scan_mode_hands_out_every_frame_the_camera_wrote(tmp_path: Path) -> None:
    """The scan mode drives the real planner and watcher over a live ring: every frame the
    camera thread wrote is handed out, once, and the CPU per scan is reported."""
    _stdout, figures = run_bench(tmp_path, "--mode", "scan", "--quick", timeout=50)
    rows = figures["scan"]["scan"]
    assert [row["ring"] for row in rows] == [90, 1000]
    for row in rows:
        assert row["frames_written"] > 10
        assert row["frames_handed_out"] == row["frames_written"]
        assert row["scan_cpu_ms_median"] > 0


@pytest.mark.timeout(90)
def test_peers_plain_and_durable_all_verify(tmp_path: Path) -> None:
    """tar | nc and the rsync daemon, each as typed and durable (sync after tar; rsync
    --fsync): every row lands every file byte-identical."""
    _stdout, figures = run_bench(tmp_path, "--quick", "--only", "tar,rsync")
    rows = figures["bulk"]["loopback"]["measurements"]
    assert {m["name"]: m["verified"] for m in rows} == {
        "tar | nc": True,
        "tar | nc + sync": True,
        "rsync daemon": True,
        "rsync daemon --fsync": True,
    }
