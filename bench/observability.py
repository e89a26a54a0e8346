"""What watching costs: camxfer on loopback with and without metrics and progress.

Runs `camxfer recv --workers 2` + `camxfer send --once --conns 4` over one dataset, round-robin
(plain, observed, plain, observed, ...): "observed" adds --metrics-port to both and
`--progress lines --progress-interval 0` to the sender (a line every half-second tick, the
most it can print). Prints, per repetition and as medians, the sender's own MB/s (from
--json-stats) and the CPU seconds of both processes and the receiver's workers (from
getrusage of reaped children): on a shared machine CPU time is the steadier figure. Many
small files make a per-file cost show. First, the receiver's metric calls for one landed file
(two counters, one histogram, in multiprocess mode) are timed alone, 20000 times.

    .venv/bin/python -m bench.observability [--files 3000] [--size-kib 32] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(src: Path, work: Path, observed: bool) -> tuple[float, float]:
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
    cpu_before = cpu_of_children()
    receiver = subprocess.Popen(recv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        done = subprocess.run(send, capture_output=True, text=True, timeout=300, check=False)
        stats = json.loads(done.stdout.splitlines()[-1])
        if not stats["ok"]:
            raise RuntimeError(f"send failed: {done.stderr[-2000:]}")
        rate = float(stats["mb_per_s"])
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(30)
    return rate, cpu_of_children() - cpu_before


PER_FILE = """
import tempfile, time
from pathlib import Path
from camxfer import metrics
rec = metrics._use_folder(Path(tempfile.mkdtemp(prefix="camxfer-obs-metrics-")))
n = 20000
start = time.perf_counter()
for _ in range(n):
    cam = rec.camera("camera01")
    rec.received_files.labels(cam).inc()
    rec.received_bytes.labels(cam).inc(250000)
    rec.durable_seconds.labels(cam).observe(0.003)
print((time.perf_counter() - start) / n * 1e6)
"""


def per_file_metrics_us() -> float:
    done = subprocess.run(
        [sys.executable, "-c", PER_FILE], capture_output=True, text=True, check=True
    )
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--size-kib", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(f"receiver metric calls per landed file: {per_file_metrics_us():.1f} us", flush=True)
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
        cpus: dict[bool, list[float]] = {False: [], True: []}
        for rep in range(args.reps):
            for observed in (False, True):
                rate, cpu = one_run(src, work, observed)
                rates[observed].append(rate)
                cpus[observed].append(cpu)
                name = "observed" if observed else "plain"
                print(f"rep {rep + 1} {name:<8} {rate:8.1f} MB/s {cpu:6.2f} s CPU", flush=True)
    for observed in (False, True):
        name = "observed" if observed else "plain"
        rate, cpu = statistics.median(rates[observed]), statistics.median(cpus[observed])
        print(f"median {name:<8} {rate:8.1f} MB/s {cpu:6.2f} s CPU")
    extra = statistics.median(cpus[True]) - statistics.median(cpus[False])
    print(f"observed - plain: {extra:+.3f} s CPU, {extra / args.files * 1e6:+.1f} us per file")


if __name__ == "__main__":
    main()
