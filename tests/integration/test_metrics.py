"""The Prometheus endpoints parse, and their counters match what a real transfer moved.

A receiver with several worker processes serves one endpoint whose counters add up every
worker's files (and survive a worker killed with SIGKILL); `camxfer receivers` serves every
camera's receiver on one endpoint; the trigger server counts triggers, events and the frames
its senders had acknowledged.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
from fleet_helpers import (
    files_under,
    frame_bytes,
    free_ports,
    make_layout,
    receivers,
    start,
    trigger_server,
    wait_for,
    write_frames,
)
from prometheus_client.parser import text_string_to_metric_families

from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name
from tests.conftest import make_frames, run_sender

pytestmark = pytest.mark.timeout(90)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of the endpoint, by (name, labels); the text must parse."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def worker_pids_that_served(log: str) -> set[str]:
    """Pids of the receiver processes that logged a connection."""
    return set(re.findall(r"camxfer recv\[(\d+)\] INFO [^ ]+: connected", log))


def test_receiver_counters_add_up_across_workers_and_survive_a_killed_worker(
    receivers, tmp_path: Path
) -> None:
    metrics_port = free_ports(1)[0]
    receiver = receivers(
        tmp_path / "out",
        "--workers",
        "3",
        "--reuseport",
        "--use-dest-paths",
        "--metrics-port",
        str(metrics_port),
        "--metrics-bind",
        "127.0.0.1",
    )
    sent_files, sent_bytes = 0, 0
    # The kernel spreads connections over the workers' sockets; send batches until more
    # than one worker has landed files (almost always the first batch).
    for batch in range(6):
        src = tmp_path / f"src{batch}"
        frames = make_frames(src, 24, size=20_000 + batch * 1000, camera="camera07")
        result = run_sender(
            src, receiver.port, "--once", "--conns", "8", "--dest-path", f"ball{batch}/camera07"
        )
        assert result.returncode == 0, result.stderr
        sent_files += len(frames)
        sent_bytes += sum(p.stat().st_size for p in frames)
        if len(worker_pids_that_served(receiver.log())) > 1:
            break
    assert len(worker_pids_that_served(receiver.log())) > 1, receiver.log()

    samples = scrape(metrics_port)
    assert value(samples, "camxfer_receiver_files_total", camera="camera07") == sent_files
    assert value(samples, "camxfer_receiver_bytes_total", camera="camera07") == sent_bytes
    assert value(samples, "camxfer_receiver_durable_seconds_count", camera="camera07") == sent_files
    landed = [p for p in files_under(tmp_path / "out") if p.endswith(".jpg")]
    assert len(landed) == sent_files

    # A worker killed with SIGKILL is restarted; what it counted stays counted.
    victim = receiver.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: value(scrape(metrics_port), "camxfer_receiver_worker_restarts_total") == 1,
        30,
        "the worker restart to be counted",
    )
    after = scrape(metrics_port)
    assert value(after, "camxfer_receiver_files_total", camera="camera07") == sent_files
    assert value(after, "camxfer_receiver_connections") == 0


def test_fleet_endpoints_count_a_triggered_event(tmp_path: Path) -> None:
    cameras = ["cam01", "cam02"]
    layout = make_layout(tmp_path / "fleet", cameras)
    for camera in cameras:
        write_frames(layout.src(camera), camera, range(500, 520))
    recv_metrics, send_metrics = free_ports(2)
    with (
        receivers(layout, "--metrics-port", str(recv_metrics), workers=2),
        trigger_server(layout, "--metrics-port", str(send_metrics)),
    ):
        client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=5.0)
        reply = client.trigger(frame_name("cam01", 505), "ball_m")
        assert reply["ok"], reply
        status = client.wait(reply["event"], timeout=60)
        assert status["state"] == "done", status
        refused = client.request({"frame_id": "not-a-frame", "ball_id": "ball_m"})
        assert not refused["ok"]

        sent = scrape(send_metrics)
        received = scrape(recv_metrics)
    for camera in cameras:
        names = [frame_name(camera, n) for n in range(505, 515)]
        size = sum((layout.src(camera) / name).stat().st_size for name in names)
        assert value(sent, "camxfer_sender_files_total", camera=camera) == 10
        assert value(sent, "camxfer_sender_bytes_total", camera=camera) == size
        assert value(sent, "camxfer_sender_ack_seconds_count", camera=camera) == 10
        assert value(sent, "camxfer_sender_in_flight", camera=camera) == 0
        assert value(received, "camxfer_receiver_files_total", camera=camera) == 10
        assert value(received, "camxfer_receiver_bytes_total", camera=camera) == size
        assert sorted(files_under(layout.dest(camera) / "ball_m" / camera)) == sorted(names)
    assert value(sent, "camxfer_triggers_total", result="accepted") == 1
    assert value(sent, "camxfer_triggers_total", result="refused") == 1
    assert value(sent, "camxfer_events_total", state="done") == 1
    assert value(sent, "camxfer_events_running") == 0


def test_a_taken_metrics_port_is_one_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_frames(src, 2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_sender(src, port, "--once", "--metrics-port", str(port))
    assert result.returncode == 2
    assert "cannot serve metrics on 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_watching_sender_counts_what_it_sent(receivers, senders, tmp_path: Path) -> None:
    receiver = receivers(tmp_path / "out", "--use-dest-paths")
    frames = make_frames(tmp_path / "src", 20, size=10_000, camera="camera05")
    metrics_port = free_ports(1)[0]
    sender = senders(
        tmp_path / "src",
        receiver.port,
        "--dest-path",
        "ball_w/camera05",
        "--lookahead",
        "0",
        "--metrics-port",
        str(metrics_port),
    )

    def all_acknowledged() -> Samples | None:
        if sender.poll() is not None:
            raise AssertionError(f"the sender exited: {sender.communicate()}")
        try:
            samples = scrape(metrics_port)
        except OSError:
            return None  # not serving yet
        done = value(samples, "camxfer_sender_files_total", camera="camera05") == len(frames)
        return samples if done else None

    samples = wait_for(all_acknowledged, 30, "the sender to count every frame")
    assert value(samples, "camxfer_sender_bytes_total", camera="camera05") == 20 * 10_000
    assert value(samples, "camxfer_sender_ack_seconds_count", camera="camera05") == 20
    assert value(samples, "camxfer_sender_backlog", camera="camera05") == 0
    assert value(samples, "camxfer_sender_failures_total", camera="camera05", kind="failed") == 0
    assert len(list((tmp_path / "out" / "ball_w" / "camera05").iterdir())) == 20
    sender.send_signal(signal.SIGTERM)
    assert sender.wait(30) == 0


def test_direct_mode_senders_add_up_their_camera_processes(tmp_path: Path) -> None:
    cameras = ["cam01", "cam02"]
    layout = make_layout(tmp_path / "fleet", cameras)
    for camera in cameras:
        write_frames(layout.src(camera), camera, range(1, 13))
    metrics_port = free_ports(1)[0]
    with receivers(layout, workers=1):
        senders = start(
            "camxfer senders",
            ["senders", "--config", str(layout.config), "--metrics-port", str(metrics_port)],
            layout.root / "direct.log",
            layout.root,
        )
        try:

            def counted() -> Samples | None:
                try:
                    samples = scrape(metrics_port)
                except OSError:
                    return None
                files = [value(samples, "camxfer_sender_files_total", camera=c) for c in cameras]
                return samples if files == [12, 12] else None

            samples = wait_for(counted, 30, "both cameras' senders to be counted")
        finally:
            senders.stop()
    for camera in cameras:
        landed = files_under(layout.dest(camera) / camera)
        assert len(landed) == 12
        size = sum(len(frame_bytes(camera, n)) for n in range(1, 13))
        assert value(samples, "camxfer_sender_bytes_total", camera=camera) == size


def test_a_killed_services_metrics_folder_is_removed_by_the_next_one(
    receivers, tmp_path: Path
) -> None:
    # A serving process killed with SIGKILL cannot remove its folder; the next one does.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = Path(tempfile.gettempdir()) / f"camxfer-metrics-{dead.pid}-test"
    left.mkdir()
    (left / "counter_1.db").write_bytes(b"\0" * 8)
    receivers(tmp_path / "out", "--metrics-port", str(free_ports(1)[0]))
    assert not left.exists()
