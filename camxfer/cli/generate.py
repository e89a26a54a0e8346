"""`camxfer generate`: write test frames into camera folders, as a batch or as live cameras.

Responsible for: the command's options, checking them (one clear line per mistake), finding each
camera's folder (--out-dir, else the cameras' `src` in camera_config.json), and printing progress
and summaries. The frames themselves come from `camxfer.tools.generate`; the real-time writing
from `camxfer.tools.live_camera`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from camxfer.errors import ConfigError, ExitCode, UsageError
from camxfer.fleet.config import CAMERA_NAME, DEFAULT_CONFIG_NAME, load_config
from camxfer.tools.generate import (
    MAX_PIXELS,
    MIB,
    ImagePlan,
    SizeRange,
    check_writable,
    generate_batch,
    make_pools,
    plan_image,
)
from camxfer.tools.live_camera import CameraStats, CompletionLog, LiveSettings, run_live

DEFAULT_CAMERAS = tuple(f"camera{number:02d}" for number in range(1, 7))
DEFAULT_COUNT = 900
DEFAULT_FPS = 30.0
# Live mode cycles through this many different frames per camera; made before the clock starts
# so that writing is only a copy and 6 cameras x 30 fps fit on two cores.
LIVE_POOL_SIZE = 16

EXAMPLES = """\
examples:
  camxfer generate --out-dir /tmp/frames --count 100
      100 frames for each of camera01..camera06 in /tmp/frames/<camera>/
  camxfer generate --cameras camera01,camera02 --seed 7
      900 frames each into the cameras' src folders from ./camera_config.json;
      the same --seed gives byte-identical files
  camxfer generate --live --out-dir /tmp/ring --ring 300 --duration 60
      six cameras writing 30 frames/s for a minute, keeping each camera's newest 300
  camxfer generate --live --cameras camera01 --log-completions /tmp/closed.tsv
      one live camera until Ctrl-C, logging when each frame was closed

Batch frames are written atomically (a hidden temporary name, fsync, rename), so a frame is
never visible before it is whole. Live frames are written like a camera writes them: the
final name is opened and the bytes arrive in pieces over the frame period, so readers do see
partially written files; the sender's completion detection has to cope with that.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write test JPEG frames into camera folders, or simulate live cameras",
        description="Write real JPEG test frames, frame_<camera>_<number:09d>.jpg, each of a "
        "random file size\nbetween --min-mb and --max-mb, into every camera's folder. With "
        "--live, simulate cameras\nwriting frames in real time into ring-buffer folders.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("cameras and folders")
    where.add_argument(
        "--cameras",
        metavar="NAMES",
        help="comma-separated camera names (default: every camera in the config file, or "
        f"{DEFAULT_CAMERAS[0]}..{DEFAULT_CAMERAS[-1]} with --out-dir and no config file)",
    )
    where.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="write each camera's frames into DIR/<camera>/ (default: each camera's 'src' "
        "folder from the config file)",
    )
    where.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help='camera description, JSON like {"camera01": {"src": "/ring/camera01", ...}}; '
        f"relative folders are taken from the file's folder (default: ./{DEFAULT_CONFIG_NAME} "
        "if it exists)",
    )
    frames = parser.add_argument_group("frames")
    frames.add_argument(
        "--count",
        type=int,
        metavar="N",
        help=f"frames per camera (default: {DEFAULT_COUNT}; with --live: no limit)",
    )
    frames.add_argument(
        "--start", type=int, default=0, metavar="N", help="number of the first frame (default: 0)"
    )
    frames.add_argument(
        "--min-mb",
        type=float,
        default=1.0,
        metavar="MIB",
        help="smallest file size in MiB (default: %(default)s)",
    )
    frames.add_argument(
        "--max-mb",
        type=float,
        default=2.0,
        metavar="MIB",
        help="largest file size in MiB; each frame gets a random size in between "
        "(default: %(default)s)",
    )
    frames.add_argument(
        "--width",
        type=int,
        default=1600,
        metavar="PX",
        help="picture width; scaled (keeping the aspect) only if no JPEG quality reaches the "
        "size range (default: %(default)s)",
    )
    frames.add_argument(
        "--height", type=int, default=1200, metavar="PX", help="picture height (default: 1200)"
    )
    frames.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="make the run reproducible: the same seed and options give byte-identical "
        "files (default: a random seed, printed in the summary)",
    )
    frames.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes making frames (default: one per CPU)",
    )
    live = parser.add_argument_group("live camera simulation")
    live.add_argument(
        "--live",
        action="store_true",
        help="write frames in real time, in pieces under their final names, until --duration, "
        "--count or Ctrl-C/SIGTERM (default: write a batch as fast as possible)",
    )
    live.add_argument(
        "--fps",
        type=float,
        metavar="N",
        help=f"frames per second per camera (default: {DEFAULT_FPS:g})",
    )
    live.add_argument(
        "--ring",
        type=int,
        metavar="N",
        help="keep only each camera's newest N frames of this run, deleting older ones as new "
        "ones are closed (default: 0, keep all)",
    )
    live.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (default: 0, run until Ctrl-C or SIGTERM)",
    )
    live.add_argument(
        "--log-completions",
        type=Path,
        metavar="FILE",
        help="append '<frame name><TAB><time.time()>' to FILE as each frame is closed, for "
        "measuring completion-to-landed latency (default: no log)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return _run(args, stdout=sys.stdout, stderr=sys.stderr, cwd=Path.cwd())


def _run(args: argparse.Namespace, *, stdout: TextIO, stderr: TextIO, cwd: Path) -> int:
    sizes = SizeRange.from_mib(args.min_mb, args.max_mb)
    _check_numbers(args)
    cameras = _parse_cameras(args.cameras)
    folders = camera_folders(cameras, args.config, args.out_dir, cwd)
    for folder in folders.values():
        check_writable(folder)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    plan = plan_image(args.width, args.height, sizes, seed)
    if (plan.width, plan.height) != (args.width, args.height):
        print(
            f"note: frames are {plan.width}x{plan.height} instead of {args.width}x{args.height}, "
            f"the size at which JPEG reaches {sizes.describe()}.",
            file=stderr,
        )
    if args.live:
        return _run_live(args, folders, plan, sizes, stdout=stdout, stderr=stderr)

    count = DEFAULT_COUNT if args.count is None else args.count
    result = generate_batch(
        folders,
        plan,
        sizes,
        start=args.start,
        count=count,
        workers=args.workers,
        progress=stderr if stderr.isatty() else None,
    )
    print(
        f"generated {_plural(result.frames, 'frame')} ({result.bytes / MIB:.1f} MiB) for "
        f"{_plural(len(folders), 'camera')} in {result.seconds:.1f} s "
        f"({result.frames_per_second:.1f} frames/s), seed {seed}",
        file=stdout,
    )
    return ExitCode.OK


def _check_numbers(args: argparse.Namespace) -> None:
    """Out-of-range numbers, each reported as one sentence naming the option."""
    count, fps, ring, duration = args.count, args.fps, args.ring, args.duration
    problems = [
        (count is not None and count < 0, f"--count must not be negative, got {count}"),
        (args.start < 0, f"--start must not be negative, got {args.start}"),
        (args.width < 1 or args.height < 1, "--width and --height must be at least 1 pixel"),
        (
            args.width * args.height > MAX_PIXELS,
            f"--width x --height must be at most {MAX_PIXELS // 1_000_000} megapixels",
        ),
        (args.seed is not None and args.seed < 0, f"--seed must not be negative, got {args.seed}"),
        (args.workers is not None and args.workers < 1, "--workers must be at least 1"),
        (fps is not None and not 0 < fps < math.inf, f"--fps must be more than 0, got {fps}"),
        (ring is not None and ring < 0, f"--ring must not be negative, got {ring}"),
        (
            duration is not None and not duration >= 0,
            f"--duration must not be negative, got {duration}",
        ),
    ]
    for failed, message in problems:
        if failed:
            raise UsageError(message + ".")
    if not args.live:
        given = [
            option
            for option, value in (
                ("--fps", args.fps),
                ("--ring", args.ring),
                ("--duration", args.duration),
                ("--log-completions", args.log_completions),
            )
            if value is not None
        ]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UsageError(f"{', '.join(given)} only {verb} with --live.")


def _parse_cameras(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--cameras is empty; give names like camera01,camera02.")
    for name in names:
        if not CAMERA_NAME.fullmatch(name):
            raise UsageError(
                f"camera name {name!r} is not allowed; use letters, digits, '_' or '-', "
                "starting with a letter or digit."
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UsageError(f"--cameras lists {', '.join(duplicates)} more than once.")
    return names


def camera_folders(
    cameras: Sequence[str] | None, config: Path | None, out_dir: Path | None, cwd: Path
) -> dict[str, Path]:
    """Each camera's frame folder: `out_dir/<camera>`, else the camera's `src` in the config.

    The camera list is `cameras`, else every camera of the config, else DEFAULT_CAMERAS.
    `config` None means `cwd/camera_config.json` if that exists. Names in `cameras` must be in
    the config when it gives the folders or was named explicitly.
    """
    config_path = config if config is not None else cwd / DEFAULT_CONFIG_NAME
    if config is None and not config_path.is_file():
        if out_dir is None:
            raise UsageError(
                f"no folder to write to: give --out-dir DIR, or --config FILE, or run where "
                f"{DEFAULT_CONFIG_NAME} is (not found in {cwd})."
            )
        return {camera: out_dir / camera for camera in cameras or DEFAULT_CAMERAS}
    if out_dir is not None and config is None and cameras is not None:
        # An out-of-the-way config in the current folder should not veto explicit names.
        return {camera: out_dir / camera for camera in cameras}
    fleet = load_config(config_path, need_src=out_dir is None)
    names = [camera.name for camera in fleet.cameras] if cameras is None else list(cameras)
    folders = {}
    for name in names:
        camera = fleet.camera(name)  # raises ConfigError naming the cameras it has
        if out_dir is not None:
            folders[name] = out_dir / name
        elif camera.src is not None:  # always: load_config(need_src=True) checked it
            folders[name] = camera.src
        else:
            raise ConfigError(f"{fleet.path}: camera {name!r} has no 'src' folder.")
    return folders


def _run_live(
    args: argparse.Namespace,
    folders: dict[str, Path],
    plan: ImagePlan,
    sizes: SizeRange,
    *,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    settings = LiveSettings(
        fps=DEFAULT_FPS if args.fps is None else args.fps,
        ring=args.ring or 0,
        start=args.start,
        count=args.count,
    )
    with contextlib.ExitStack() as stack:
        on_complete = None
        if args.log_completions is not None:
            try:
                on_complete = stack.enter_context(CompletionLog(args.log_completions))
            except OSError as exc:
                raise UsageError(
                    f"cannot open --log-completions file {args.log_completions}: "
                    f"{exc.strerror or exc}."
                ) from None
        began = time.monotonic()
        pools = make_pools(
            list(folders), plan, sizes, first=args.start, size=LIVE_POOL_SIZE, workers=args.workers
        )
        print(
            f"live: made {LIVE_POOL_SIZE} frames per camera in {time.monotonic() - began:.1f} s",
            file=stderr,
        )
        if args.duration or settings.count is not None:
            until = [f"{args.duration:g} s"] if args.duration else []
            if settings.count is not None:
                until.append(f"{_plural(settings.count, 'frame')} per camera")
            ending = f"stopping after {' or '.join(until)}."
        else:
            ending = "Ctrl-C to stop."
        print(
            f"live: {_plural(len(folders), 'camera')} at {settings.fps:g} frames/s"
            f"{f', ring {settings.ring}' if settings.ring else ''}; {ending}",
            file=stderr,
            flush=True,
        )
        stop = threading.Event()
        with _stop_on_signals(stop):
            summary = run_live(
                folders,
                pools,
                settings,
                stop,
                duration=args.duration or 0.0,
                on_complete=on_complete,
                on_tick=_LagReporter(stderr),
            )
    print(
        f"live: {_plural(len(folders), 'camera')} wrote {_plural(summary.written, 'frame')} "
        f"({summary.bytes / MIB:.1f} MiB) in {summary.seconds:.1f} s; "
        f"{summary.late} late, {summary.dropped} dropped; seed {plan.seed}",
        file=stdout,
    )
    return ExitCode.OK


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class _LagReporter:
    """Prints, once a second, which cameras are behind schedule; silent while all keep up."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.dropped = 0

    def __call__(self, cameras: Sequence[CameraStats]) -> None:
        behind = [stats for stats in cameras if stats.behind > 0]
        dropped = sum(stats.dropped for stats in cameras)
        if behind or dropped > self.dropped:
            lag = ", ".join(f"{stats.camera} {stats.behind}" for stats in behind) or "none"
            print(
                f"live: behind schedule (frames): {lag}; dropped {dropped - self.dropped} "
                "in the last second",
                file=self.stream,
                flush=True,
            )
        self.dropped = dropped


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM end the live run cleanly: frames being written are finished first."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
