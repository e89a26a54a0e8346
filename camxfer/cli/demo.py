"""`camxfer demo`: the whole fleet of camera_config.json on this machine, end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

from camxfer.cli.common import (
    add_auth_key_argument,
    load_auth_key,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
)
from camxfer.errors import ExitCode
from camxfer.fleet.config import add_config_argument
from camxfer.fleet.demo import DemoSettings, report_lines, run_demo
from camxfer.logs import setup_logging

EXAMPLES = """\
examples:
  camxfer demo                         # six live cameras at 10 fps, a 60-frame event
  camxfer demo --fps 30 --count 90     # the production frame rate

Clears the cameras' ring folders, starts the live camera simulation, the receivers and the
trigger server, triggers one event from the newest frame on, waits for it, checks every
landed frame byte for byte against the camera's copy, prints a report and stops everything.
Exit status 0 when every frame landed whole.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole fleet of camera_config.json on this machine, end to end",
        description="Run live cameras, receivers and the trigger server, trigger one event, "
        "verify every frame landed whole, and stop.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(p)
    p.add_argument(
        "--fps",
        type=positive_float,
        default=10.0,
        help="frames per second per camera (default: 10)",
    )
    p.add_argument(
        "--count",
        type=positive_int,
        default=60,
        help="frames per camera in the event (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        help="worker processes per receiver (default: %(default)s)",
    )
    p.add_argument(
        "--zmq-port",
        type=port_number,
        default=5555,
        help="trigger server port (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=non_negative_float,
        default=120.0,
        metavar="SECONDS",
        help="longest the event may take (default: 120)",
    )
    p.add_argument(
        "--min-mb",
        type=non_negative_float,
        default=1.0,
        help="smallest frame, MiB (default: %(default)g)",
    )
    p.add_argument(
        "--max-mb",
        type=non_negative_float,
        default=2.0,
        help="largest frame, MiB (default: %(default)g)",
    )
    add_auth_key_argument(p, per_camera=True)
    p.add_argument("--verbose", action="store_true", help="more log lines")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    setup_logging("demo", verbose=args.verbose)
    load_auth_key(args.auth_key_file)  # a bad key file is one clear error before anything starts
    result = run_demo(
        DemoSettings(
            config=Path(args.config),
            fps=args.fps,
            count=args.count,
            workers=args.workers,
            zmq_port=args.zmq_port,
            timeout=args.timeout,
            min_mb=args.min_mb,
            max_mb=args.max_mb,
            auth_key_file=args.auth_key_file,
        )
    )
    for line in report_lines(result):
        print(line)
    return ExitCode.OK if result.ok else ExitCode.FAILED
