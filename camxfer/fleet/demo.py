"""The embedded default, end to end: live cameras, receivers, trigger server, one trigger.

Starts every piece as its own process, exactly as an operator would on a real fleet
(`camxfer generate --live`, `camxfer receivers`, `camxfer senders --zmq`), sends one trigger,
follows the event, verifies every landed frame against the camera's copy, prints a short
report and stops everything it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from camxfer.errors import TransferError
from camxfer.fleet.config import FleetConfig, load_config
from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name, frame_number
from camxfer.send.report import percentile
from camxfer.tools.digest import sha256_file

log = logging.getLogger("camxfer.fleet")


@dataclass(frozen=True)
class DemoSettings:
    config: Path
    fps: float = 10.0
    count: int = 60  # frames per camera in the event
    ring: int = 200
    workers: int = 2
    zmq_port: int = 5555
    timeout: float = 120.0
    min_mb: float = 1.0
    max_mb: float = 2.0
    auth_key_file: Path | None = None  # receivers and senders authenticate with this key


@dataclass
class DemoResult:
    ok: bool
    asked: int
    landed: int
    verified: int
    bad: list[str]
    bytes: int
    seconds: float
    latencies: list[float]
    trigger_to_first_byte: float | None


def _wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TransferError(f"nothing listens on {host}:{port} after {timeout:g} s")


class Demo:
    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.config: FleetConfig = load_config(settings.config, need_src=True, need_dest=True)
        self.processes: list[subprocess.Popen] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="camxfer-demo-"))

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "camxfer", *args]
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.processes.append(process)
        log.info("started %s (pid %d), log %s", name, process.pid, log_path)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def _clear_rings(self) -> None:
        # Old frames from an earlier run would make new ones look complete (lookahead).
        for camera in self.config.cameras:
            assert camera.src is not None
            camera.src.mkdir(parents=True, exist_ok=True)
            for path in camera.src.glob("frame_*.jpg"):
                path.unlink()

    def run(self) -> DemoResult:
        s = self.settings
        config = str(s.config)
        self._clear_rings()
        completions = self.workdir / "completions.tsv"
        auth = ["--auth-key-file", str(s.auth_key_file)] if s.auth_key_file else []
        self._start(
            "receivers", "receivers", "--config", config, "--workers", str(s.workers), *auth
        )
        self._start(
            "trigger-server",
            "senders",
            "--config",
            config,
            "--zmq",
            "--zmq-bind",
            "127.0.0.1",
            "--zmq-port",
            str(s.zmq_port),
            "--max-files",
            str(s.count),
            "--timeout",
            str(s.timeout),
            *auth,
        )
        self._start(
            "cameras",
            "generate",
            "--live",
            "--config",
            config,
            "--fps",
            str(s.fps),
            "--ring",
            str(s.ring),
            "--seed",
            "7",
            "--min-mb",
            str(s.min_mb),
            "--max-mb",
            str(s.max_mb),
            "--log-completions",
            str(completions),
        )
        for camera in self.config.cameras:
            _wait_port(camera.host, camera.port, 30)
        first_camera = self.config.cameras[0]
        newest = self._wait_for_frames(first_camera.src, 30)
        ball_id = time.strftime("demo_%Y%m%d_%H%M%S")
        with TriggerClient("127.0.0.1", s.zmq_port, timeout=5) as client:
            trigger_at = time.time()
            reply = client.trigger(frame_name(first_camera.name, newest), ball_id)
            if not reply.get("ok"):
                raise TransferError(f"trigger refused: {reply.get('error')}")
            event = reply["event"]
            print(
                f"triggered event {event}: frames {newest}..{newest + s.count - 1} of "
                f"{len(self.config.cameras)} cameras at {s.fps:g} fps",
                flush=True,
            )
            status = client.wait(
                event, timeout=s.timeout + 30, interval=0.5, on_status=self._show_progress
            )
        print(file=sys.stderr)
        return self._verify(status, ball_id, newest, completions, trigger_at)

    def _wait_for_frames(self, folder: Path | None, timeout: float) -> int:
        assert folder is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            numbers = [
                n for p in folder.glob("frame_*.jpg") if (n := frame_number(p.name)) is not None
            ]
            if len(numbers) >= 2:
                return max(numbers)
            time.sleep(0.1)
        raise TransferError(f"the simulated camera wrote no frames into {folder} in {timeout:g} s")

    @staticmethod
    def _show_progress(status: dict) -> None:
        totals = status.get("totals")
        if totals:
            print(
                f"\r  {totals['landed']}/{totals['asked']} frames landed, "
                f"{totals['bytes'] / 1e6:.0f} MB",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def _verify(
        self, status: dict, ball_id: str, first: int, completions: Path, trigger_at: float
    ) -> DemoResult:
        completed: dict[str, float] = {}
        if completions.exists():
            for line in completions.read_text().splitlines():
                name, _, when = line.partition("\t")
                with contextlib.suppress(ValueError):
                    completed[name] = float(when)
        bad: list[str] = []
        verified = 0
        latencies: list[float] = []
        first_landed: float | None = None
        for camera in self.config.cameras:
            assert camera.src is not None and camera.dest_path is not None
            landed_dir = camera.dest_path / ball_id / camera.name
            for number in range(first, first + self.settings.count):
                name = frame_name(camera.name, number)
                landed, source = landed_dir / name, camera.src / name
                if not landed.exists():
                    bad.append(f"{camera.name}/{name}: not landed")
                    continue
                mtime = landed.stat().st_mtime
                first_landed = mtime if first_landed is None else min(first_landed, mtime)
                if name in completed:
                    latencies.append(max(0.0, mtime - completed[name]))
                if source.exists() and sha256_file(source) != sha256_file(landed):
                    bad.append(f"{camera.name}/{name}: differs from the camera's copy")
                    continue
                if not landed.read_bytes().endswith(b"\xff\xd9"):
                    bad.append(f"{camera.name}/{name}: not a whole JPEG")
                    continue
                verified += 1
        totals = status.get("totals", {})
        seconds = (status.get("ended") or time.time()) - (status.get("started") or trigger_at)
        return DemoResult(
            ok=not bad and status.get("state") == "done",
            asked=totals.get("asked", 0),
            landed=totals.get("landed", 0),
            verified=verified,
            bad=bad,
            bytes=totals.get("bytes", 0),
            seconds=seconds,
            latencies=sorted(latencies),
            trigger_to_first_byte=(first_landed - trigger_at) if first_landed else None,
        )


def report_lines(result: DemoResult) -> list[str]:
    mb = result.bytes / 1e6
    lines = [
        f"frames: {result.landed}/{result.asked} landed, {result.verified} verified byte-identical",
        f"data:   {mb:.1f} MB in {result.seconds:.2f} s ({mb / max(result.seconds, 1e-9):.1f} MB/s "
        "while the cameras were still writing them)",
    ]
    if result.latencies:
        lat = result.latencies
        lines.append(
            f"frame complete -> landed: p50 {percentile(lat, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(lat, 0.99) * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
        )
    if result.trigger_to_first_byte is not None:
        lines.append(f"trigger -> first frame landed: {result.trigger_to_first_byte * 1000:.0f} ms")
    lines.extend(f"PROBLEM {line}" for line in result.bad[:20])
    lines.append("result: OK" if result.ok else "result: FAILED")
    return lines


def run_demo(settings: DemoSettings) -> DemoResult:
    demo = Demo(settings)
    try:
        return demo.run()
    finally:
        demo.stop_all()
        if os.environ.get("CAMXFER_DEMO_KEEP_LOGS") is None:
            for path in demo.workdir.iterdir():
                path.unlink()
            demo.workdir.rmdir()
