"""The benchmark command: parse flags, run the chosen modes, print tables, write JSON.

Responsible for: the flags and their --quick variants, the order of modes, the data sets of
the bulk and small modes, the link(s), and always cleaning up (child processes, the netns
link, the data sets) - also on Ctrl-C or SIGTERM.
Not responsible for: measuring (bulk, scaling, live, memory, profiling) or formatting (report).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import interpreter, report
from bench.bulk import parse_only, run_suite
from bench.dataset import KIB, MIB, Dataset, make_dataset
from bench.netns import LOOPBACK, Link, netns_link
from bench.procs import stop_all

MODES = ("bulk", "small", "scaling", "live", "memory", "profile", "scan")
ALL_MODES = ("bulk", "small", "scaling", "memory", "live")  # profile only when asked
LIVE_CONNS = 2
RESULTS = Path(__file__).resolve().parent / "results"
NOTE = (
    "2-core machine shared with other engineers' tests: figures move 10-20% between runs; "
    "compare rows within one run. MB = 10^6 bytes; data = random bytes."
)

EPILOG = """\
modes:
  bulk     every contender on --count frames of --min-mb..--max-mb MiB (default 300 x 1-2 MiB)
  small    the same on 1000 frames of 100-300 KiB: files/s
  scaling  camxfer MB/s against --conns, --workers and file size; PNG plots in bench/results
  live     6 simulated cameras x 30 fps into ring folders, a continuous sender each: latency,
           backlog, and trigger-to-first-byte through `camxfer senders --zmq`
  memory   peak RSS of sender and receiver workers for small/many vs large/few files
  profile  py-spy flame graphs of `camxfer send` and `camxfer recv` on loopback bulk
  scan     the sender's planner on a live 30 fps ring folder of 90, 1000 and 5000 frames:
           scans per second and CPU per scan
  all      bulk, small, scaling, memory, live

examples:
  .venv/bin/python -m bench.run                          # bulk on loopback, 3 reps
  .venv/bin/python -m bench.run --link both --json bench/results/bulk.json
  .venv/bin/python -m bench.run --quick --only camxfer,sendfile,cp
  .venv/bin/python -m bench.run --mode all --json bench/results/all.json
"""


@dataclass(frozen=True)
class Settings:
    count: int
    min_mb: float
    max_mb: float
    reps: int
    links: tuple[str, ...]
    modes: tuple[str, ...]
    only: frozenset[str]
    quick: bool
    workdir: Path
    iperf_seconds: float
    small_count: int
    live_cameras: int
    live_fps: float
    live_seconds: float
    live_conns: int
    json_path: Path | None
    camxfer_src: Path | None
    compare_src: Path | None


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Measure camxfer against its peers (tar|nc, rsync, Python baselines) and "
        "the ceiling (iperf3, cp) in one run; print MB/s, files/s and ratios.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--mode", default="bulk", choices=(*MODES, "all"), help="default: bulk")
    p.add_argument("--count", type=int, default=300, help="bulk: frames (default: 300)")
    p.add_argument("--min-mb", type=float, default=1.0, help="bulk: smallest frame, MiB (1.0)")
    p.add_argument("--max-mb", type=float, default=2.0, help="bulk: largest frame, MiB (2.0)")
    p.add_argument("--reps", type=int, default=3, help="repetitions, median reported (3)")
    p.add_argument("--link", default="loopback", choices=("loopback", "netns", "both"))
    p.add_argument("--only", metavar="NAME,...", help="iperf3,cp,tar,rsync,seed,sendfile,camxfer")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    p.add_argument("--quick", action="store_true", help="small data, 1 rep: a smoke test")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/camxfer-bench"),
        help="data sets, destinations and logs/ of every process (default: %(default)s)",
    )
    p.add_argument("--iperf-seconds", type=float, default=3.0, help="per iperf3 run (3)")
    p.add_argument("--small-count", type=int, default=1000, help="small: frames (1000)")
    p.add_argument("--live-cameras", type=int, default=6, help="live: cameras (6)")
    p.add_argument("--live-fps", type=float, default=30.0, help="live: frames per second (30)")
    p.add_argument("--live-seconds", type=float, default=20.0, help="live: capture time (20)")
    p.add_argument(
        "--live-conns",
        type=int,
        default=LIVE_CONNS,
        help=f"live: connections per camera's sender ({LIVE_CONNS}: a frame every 33 ms needs "
        "one connection sending while another waits for its ack)",
    )
    p.add_argument(
        "--camxfer-src",
        type=Path,
        metavar="DIR",
        help="run every camxfer process from the package in DIR (a folder holding camxfer/, "
        "e.g. a patched copy) instead of the installed one",
    )
    p.add_argument(
        "--compare-src",
        type=Path,
        metavar="DIR",
        help="bulk/small: also measure camxfer (defaults) from the package in DIR, in the same "
        "rounds as the installed one: an A/B test of an engine change",
    )
    a = p.parse_args(argv)
    if a.live_conns < 1:
        p.error("--live-conns must be at least 1")
    for src in (a.camxfer_src, a.compare_src):
        if src is not None and not (src / "camxfer" / "__init__.py").is_file():
            p.error(f"{src} holds no camxfer package (no {src}/camxfer/__init__.py)")
    try:
        only = parse_only(a.only)
    except ValueError as exc:
        p.error(str(exc))
    if a.quick:
        a.count, a.min_mb, a.max_mb, a.reps = min(a.count, 60), 0.5, 1.0, 1
        a.iperf_seconds, a.small_count, a.live_seconds = 1.0, min(a.small_count, 200), 6.0
    links = ("loopback", "netns") if a.link == "both" else (a.link,)
    modes = ALL_MODES if a.mode == "all" else (a.mode,)
    return Settings(
        a.count, a.min_mb, a.max_mb, max(a.reps, 1), links, modes, only, a.quick,
        a.workdir, a.iperf_seconds, a.small_count, a.live_cameras, a.live_fps,
        a.live_seconds, a.live_conns, a.json,
        a.camxfer_src.resolve() if a.camxfer_src else None,
        a.compare_src.resolve() if a.compare_src else None,
    )  # fmt: skip


@contextlib.contextmanager
def open_link(name: str) -> Iterator[Link]:
    if name == "netns":
        with netns_link() as link:
            yield link
    else:
        yield LOOPBACK


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: processes stopped, netns removed


def _compile_packages(settings: Settings) -> None:
    """Byte-compile every camxfer tree the run starts processes from.

    An installed package has its .pyc files; a checkout may not, and with
    PYTHONDONTWRITEBYTECODE set (as on some CI machines) every camxfer process would then
    compile its modules again at start-up: ~30 ms of each run here, which no user pays.
    """
    trees = [Path(__file__).resolve().parents[1]]
    trees += [src for src in (settings.camxfer_src, settings.compare_src) if src is not None]
    for tree in trees:
        compileall.compile_dir(tree / "camxfer", quiet=1)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    if argv is None:  # from the command line: no dev-venv start-up hook in any clock
        interpreter.rerun_lean(settings.workdir, sys.argv[1:])
    signal.signal(signal.SIGTERM, _on_sigterm)
    if settings.camxfer_src is not None:  # inherited by every process the harness starts
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(settings.camxfer_src), path]))
    settings.workdir.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    _compile_packages(settings)
    out: dict[str, Any] = {"meta": _meta(argv)}
    targets: list[report.Target] = []
    print(f"camxfer bench: {platform.node()}, {os.cpu_count()} CPUs, modes {settings.modes}")
    if settings.camxfer_src is not None:
        print(f"camxfer package: {settings.camxfer_src}/camxfer (--camxfer-src)")
    print(f"python: {sys.executable}")
    print(f"note: {NOTE}\n", flush=True)
    try:
        for mode in settings.modes:
            load_before = os.getloadavg()[0]
            out[mode], found = _run_mode(mode, settings)
            load = {"before": load_before, "after": os.getloadavg()[0]}
            out[mode]["load_average_1min"] = load
            print(f"({mode}: 1-min load average {load['before']:.1f} -> {load['after']:.1f})\n")
            targets += found
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process the benchmark started", file=sys.stderr)
        return 130
    finally:
        stop_all()
        for data in ("bulk-src", "small-src", "scaling", "memory", "live", "dest", "profile",
                     "config"):  # fmt: skip
            shutil.rmtree(settings.workdir / data, ignore_errors=True)
    out["targets"] = [t.to_json() for t in targets]
    if targets:
        print(report.targets_table(targets))
    if settings.quick:
        print("\n(--quick: tiny data set and one repetition; the figures only show it works)")
    if settings.json_path is not None:
        settings.json_path.parent.mkdir(parents=True, exist_ok=True)
        settings.json_path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nall figures: {settings.json_path}")
    return 0


def _meta(argv: list[str] | None) -> dict[str, Any]:
    return {
        "camxfer_package": os.environ.get("PYTHONPATH") or "installed",
        "interpreter": sys.executable,
        "command": "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "note": NOTE,
    }


def _run_mode(mode: str, s: Settings) -> tuple[dict[str, Any], list[report.Target]]:
    if mode in ("bulk", "small"):
        return _transfer_mode(mode, s)
    if mode == "scaling":
        from bench import scaling

        return scaling.run(s.workdir, reps=s.reps, quick=s.quick, results=RESULTS)
    if mode == "memory":
        from bench import memory

        return memory.run(s.workdir, quick=s.quick)
    if mode == "live":
        from bench import live

        return live.run(
            s.workdir, cameras=s.live_cameras, fps=s.live_fps, seconds=s.live_seconds,
            conns=s.live_conns, quick=s.quick,
        )  # fmt: skip
    if mode == "scan":
        from bench import scan

        return scan.run(s.workdir, quick=s.quick)
    from bench import profiling

    return profiling.run(s.workdir, quick=s.quick, results=RESULTS)


def _dataset(mode: str, s: Settings) -> Dataset:
    if mode == "bulk":
        low, high = round(s.min_mb * MIB), round(s.max_mb * MIB)
        return make_dataset(s.workdir / "bulk-src", s.count, low, high)
    return make_dataset(s.workdir / "small-src", s.small_count, 100 * KIB, 300 * KIB)


def _transfer_mode(mode: str, s: Settings) -> tuple[dict[str, Any], list[report.Target]]:
    dataset = _dataset(mode, s)
    size = f"{dataset.total_bytes / 1e6:.1f} MB"
    out: dict[str, Any] = {
        "dataset": {"files": dataset.count, "bytes": dataset.total_bytes,
                    "description": dataset.description, "content": "random bytes"},
    }  # fmt: skip
    targets: list[report.Target] = []
    cp_rows = None
    for name in s.links:
        with open_link(name) as link:
            suite = run_suite(
                dataset,
                link,
                reps=s.reps,
                workdir=s.workdir,
                only=s.only,
                quick=s.quick,
                iperf_seconds=s.iperf_seconds if mode == "bulk" else None,
                cp_rows=cp_rows,
                compare_src=s.compare_src,
            )
        cp_rows = [m for m in suite.rows if m.key == "cp"]  # a local copy: measured once
        title = (
            f"== {mode}, link {name}: {dataset.description} ({size}, random bytes), "
            f"median of {s.reps}"
        )
        print(report.table(title, suite.rows))
        print(report.ratio_table(suite.rows))
        if suite.tuned is not None:
            print(f"tuned = the best median of {len(suite.search)} candidate(s):")
            for m in suite.search:
                shown = f"{m.mb_s:6.0f} MB/s" if m.verified else f"FAILED ({m.error})"
                print(f"  {shown}  {m.flags}")
        print(flush=True)
        out[name] = {**suite.to_json(), "ratios": report.ratios(suite.rows)}
        if mode == "bulk":
            targets += report.bulk_targets(name, suite.rows)
        else:
            targets += report.small_targets(name, suite.rows)
    return out, targets
