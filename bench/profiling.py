"""The profile mode: where `camxfer send` and `camxfer recv` spend their time on loopback.

Responsible for: sending a bulk data set (600 x 1-2 MiB) and a small-frame one (2000 x
100-300 KiB) under py-spy, each twice - once writing flame graphs
(bench/results/profile[-small]-{send,recv}.svg), once writing collapsed stacks that are
summarised here: the source lines with the most samples ("self"), per side. The sender is
started by py-spy; the receiver (--workers 2) is attached to by pid with --subprocesses, so
its worker processes are sampled too. --nonblocking: the processes are not
paused to be sampled (less distortion, a rare torn stack). Idle threads (waiting on a socket,
a lock, the GIL) are not sampled; threads running or in disk I/O (fsync) are: the figures are
shares of busy time, not of wall time.
Also: how long each kind of process takes just to start (interpreter + imports), which every
bulk figure includes once per sender and receiver.
Not responsible for: judging the results (docs/performance.md does).
"""

from __future__ import annotations

import linecache
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.baselines import PYXFER
from bench.camxfer_runs import DEFAULT, read_stats
from bench.dataset import KIB, MIB, Dataset, make_dataset, verify_copy
from bench.destinations import fresh_dest
from bench.measure import RepContext
from bench.netns import LOOPBACK
from bench.procs import BenchError, Proc, free_port, wait_listening
from bench.report import Target

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
RATE = 250  # samples per second
SETTINGS = replace(DEFAULT, workers=2)
ROOT = Path(__file__).resolve().parents[1]


def _pass(data: Dataset, workdir: Path, fmt: str, outputs: dict[str, Path]) -> dict[str, float]:
    dest = fresh_dest(workdir, f"profile-{fmt}")
    ctx = RepContext(data.root, dest, free_port(), LOOPBACK.recv_host, workdir, data.count)
    logs = workdir / "logs"
    spy = [PY_SPY, "record", "--rate", str(RATE), "--nonblocking", "--format", fmt]
    receiver = Proc(SETTINGS.receiver_argv(ctx), logs, f"profile-recv-{fmt}")
    recv_spy = send_spy = None
    try:
        wait_listening(ctx.port, receiver)
        recv_spy = Proc(
            [*spy, "--subprocesses", "-o", str(outputs["recv"]), "--pid", str(receiver.pid)],
            logs,
            f"profile-recv-spy-{fmt}",
        )
        time.sleep(1.0)  # py-spy attaches to the receiver and its workers
        send_spy = Proc(
            [*spy, "-o", str(outputs["send"]), "--", *SETTINGS.sender_argv(ctx)],
            logs,
            f"profile-send-{fmt}",
        )
        began = time.perf_counter()
        if send_spy.wait(600).returncode != 0:
            raise BenchError(f"py-spy/camxfer send failed: {send_spy.stderr_tail()}")
        seconds = time.perf_counter() - began
        receiver.stop()
        recv_spy.wait(60)
    finally:
        for proc in (send_spy, receiver, recv_spy):
            if proc is not None:
                proc.stop()
    error, extra = read_stats(send_spy.stdout())
    error = error or verify_copy(data, dest / "bench")
    shutil.rmtree(dest, ignore_errors=True)
    if error:
        raise BenchError(f"profiled run does not verify: {error}")
    return {"seconds": round(seconds, 2), **extra}


def startup_seconds(repeat: int = 7) -> dict[str, float]:
    """Median wall time of commands that only start up: what each process costs before work."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "bench/pyxfer.py --help": [sys.executable, PYXFER, "--help"],
        "camxfer send --help": [sys.executable, "-m", "camxfer", "send", "--help"],
        "camxfer recv --help": [sys.executable, "-m", "camxfer", "recv", "--help"],
        "import camxfer.cli.send": [sys.executable, "-c", "import camxfer.cli.send"],
    }
    out = {}
    for label, argv in commands.items():
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True, cwd=tempfile.gettempdir())
            times.append(time.perf_counter() - began)
        out[label] = round(statistics.median(times), 3)
    return out


def summarise(raw: Path, top: int = 12) -> dict[str, Any]:
    """Collapsed stacks -> total samples and the source lines with the most self samples."""
    self_lines: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_lines[frames[-1]] += count
        for frame in set(frames):
            functions[frame.split(" (")[0]] += count
    rows = []
    for frame, count in self_lines.most_common(top):
        rows.append({"frame": frame, "share": round(count / total, 3), "code": _source_of(frame)})
    inclusive = [
        {"function": name, "share": round(count / total, 3)}
        for name, count in functions.most_common(top + 8)
    ]
    return {"samples": total, "self": rows, "inclusive": inclusive}


def _source_of(frame: str) -> str:
    """`name (path/file.py:123)` -> the text of that line, when the file is found."""
    try:
        location = frame.rsplit("(", 1)[1].rstrip(")")
        path, number = location.rsplit(":", 1)
    except (IndexError, ValueError):
        return ""
    for base in (Path(path), ROOT / path, Path(sys.prefix) / path):
        if base.is_file():
            return linecache.getline(str(base), int(number)).strip()
    return ""


# (label, frames, smallest, largest, file-name suffix) - quick runs use a tenth.
SHAPES = (("bulk", 600, MIB, 2 * MIB, ""), ("small", 2000, 100 * KIB, 300 * KIB, "-small"))


def run(workdir: Path, *, quick: bool, results: Path) -> tuple[dict[str, Any], list[Target]]:
    if not Path(PY_SPY).exists():
        print("== profile: skipped, py-spy is not installed (bash bench/setup.sh)\n")
        return {"skipped": "py-spy not installed"}, []
    out: dict[str, Any] = {"settings": SETTINGS.flags, "rate_hz": RATE}
    for label, count, low, high, suffix in SHAPES:
        count = count // 10 if quick else count
        print(f"  .. profile {label}: {count} frames", file=sys.stderr, flush=True)
        data = make_dataset(workdir / "profile" / "src", count, low, high)
        svgs = {side: results / f"profile{suffix}-{side}.svg" for side in ("send", "recv")}
        raws = {side: workdir / "profile" / f"profile{suffix}-{side}.txt" for side in svgs}
        try:
            timing = _pass(data, workdir, "flamegraph", svgs)
            _pass(data, workdir, "raw", raws)
        except (BenchError, TimeoutError) as exc:
            print(f"== profile {label}: FAILED: {exc}\n")
            out[label] = {"error": str(exc)}
            continue
        out[label] = {"dataset": data.description, **timing}
        print(f"== profile {label}, loopback: {data.description}, {SETTINGS.flags}, {RATE} Hz")
        for side in ("send", "recv"):
            summary = summarise(raws[side])
            out[label][side] = {**summary, "flamegraph": str(svgs[side])}
            print(f"  {side}: {summary['samples']} samples (not idle); most self time:")
            for row in summary["self"]:
                print(f"    {row['share'] * 100:5.1f}%  {row['frame']:<58} {row['code'][:60]}")
        print(f"  flame graphs: {svgs['send']}, {svgs['recv']}")
    out["startup_seconds"] = startup_seconds()
    print("== start-up (median wall time of a process that does no work):")
    for label, seconds in out["startup_seconds"].items():
        print(f"    {seconds * 1000:6.0f} ms  {label}")
    print()
    return out, []
