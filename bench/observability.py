"""What watching costs: camxfer on loopback with and without metrics and progress.

Runs `camxfer recv --workers 2` + `camxfer send --once --conns 4` over one dataset, round-robin
(plain, observed, plain, observed, ...): "observed" adds --metrics-port to both and
`--progress lines --progress-interval 0` to the sender (a line every half-second tick, the
most it can print). Prints the sender's own MB/s (from --json-stats, without interpreter
start-up) per repetition and the medians.

    .venv/bin/python -m bench.observability [--files 600] [--size-kib 256] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAMXFER = [sys.executable, "-m", "camxfer"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"receiver on {port} did not start")


def one_run(src: Path, work: Path, observed: bool) -> float:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    port = free_port()
    recv = [*CAMXFER, "recv", "--listen-ip", "127.0.0.1", "--port", str(port)]
    recv += ["--out-dir", str(out), "--workers", "2", "--use-dest-paths"]
    send = [*CAMXFER, "send", "--src-dir", str(src), "--port", str(port), "--once"]
    send += ["--conns", "4", "--dest-path", "bench", "--json-stats"]
    if observed:
        recv += ["--metrics-port", str(free_port())]
        send += ["--metrics-port", str(free_port()), "--progress", "lines"]
        send += ["--progress-interval", "0"]
    receiver = subprocess.Popen(recv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        done = subprocess.run(send, capture_output=True, text=True, timeout=300, check=False)
        stats = json.loads(done.stdout.splitlines()[-1])
        if not stats["ok"]:
            raise RuntimeError(f"send failed: {done.stderr[-2000:]}")
        return float(stats["mb_per_s"])
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--size-kib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="camxfer-obs-") as tmp:
        work = Path(tmp)
        src = work / "src"
        src.mkdir()
        for number in range(args.files):
            data = b"\xff\xd8" + os.urandom(args.size_kib * 1024 - 4) + b"\xff\xd9"
            (src / f"frame_camera01_{number:09d}.jpg").write_bytes(data)
        old = time.time() - 60
        for path in src.iterdir():
            os.utime(path, (old, old))
        rates: dict[bool, list[float]] = {False: [], True: []}
        for rep in range(args.reps):
            for observed in (False, True):
                rate = one_run(src, work, observed)
                rates[observed].append(rate)
                name = "observed" if observed else "plain"
                print(f"rep {rep + 1} {name:<8} {rate:8.1f} MB/s", flush=True)
    plain, observed = statistics.median(rates[False]), statistics.median(rates[True])
    print(
        f"median plain {plain:.1f} MB/s, observed {observed:.1f} MB/s "
        f"({(observed - plain) / plain * 100:+.1f} %)"
    )


if __name__ == "__main__":
    main()
