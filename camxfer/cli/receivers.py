"""`camxfer receivers`: one supervised receiver per camera of camera_config.json."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from camxfer import logs, metrics
from camxfer.auth import load_key
from camxfer.cli.common import (
    add_auth_key_argument,
    add_metrics_arguments,
    add_tls_arguments,
    metrics_settings,
    positive_int,
    stop_on_signals,
    tls_argv,
    tls_files,
)
from camxfer.cli.recv import add_direct_io_argument
from camxfer.errors import ConfigError, ExitCode, UsageError
from camxfer.fleet.config import add_camera_argument, add_config_argument, load_config
from camxfer.fleet.supervisor import Child, Supervisor
from camxfer.logs import setup_logging
from camxfer.recv.landing import prepare_landing_root
from camxfer.tls import server_context

log = logging.getLogger("camxfer.fleet")

EXAMPLES = """\
examples:
  camxfer receivers                                  # every camera in ./camera_config.json
  camxfer receivers --config /etc/camxfer/camera_config.json --workers 4 --camera camera04

Camera N of the config (in file order) listens on its "port" (default 50001 + N) and lands
frames under its "dest_path"; senders name <ball_id>/<camera> inside it. A receiver that dies
is restarted (backoff doubling up to 30 s); SIGINT/SIGTERM stops them all cleanly.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "receivers",
        help="run and supervise one receiver per camera from camera_config.json",
        description="Start one receiver per camera of the config, each on its port and "
        "landing under its dest_path, and keep them running.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(p)
    add_camera_argument(p)
    p.add_argument(
        "--workers",
        type=positive_int,
        default=16,
        help="worker processes per receiver (default: %(default)s)",
    )
    p.add_argument(
        "--listen-ip",
        metavar="ADDR",
        help='address every receiver binds (default: each camera\'s "host")',
    )
    p.add_argument(
        "--reuseport", action="store_true", help="give each worker its own SO_REUSEPORT socket"
    )
    add_auth_key_argument(p, per_camera=True)
    add_tls_arguments(p, receiver=True)
    add_direct_io_argument(p)
    p.add_argument("--verbose", action="store_true", help="log every file landed")
    add_metrics_arguments(p, "every receiver it runs, added up (labelled by camera)")
    p.set_defaults(handler=run)


def receiver_children(args: argparse.Namespace) -> list[Child]:
    config = load_config(args.config, need_dest=True)
    cameras = config.select(args.camera)
    tls = tls_files(args)
    if tls is not None:
        server_context(tls)  # one clear error now, not receivers failing over and over
    children = []
    for camera in cameras:
        dest = camera.dest_path
        assert dest is not None  # need_dest=True: load_config refused a camera without one
        _check_dest_path(args.config, camera.name, dest)
        argv = [
            sys.executable,
            "-m",
            "camxfer",
            *logs.child_flags(camera.name),
            "recv",
            "--listen-ip",
            args.listen_ip or camera.host,
            "--port",
            str(camera.port),
            "--out-dir",
            str(dest),
            "--workers",
            str(args.workers),
            "--use-dest-paths",
            "--direct-io",
            args.direct_io,
        ]
        key_file = camera.auth_key_file or args.auth_key_file
        if key_file is not None:
            load_key(key_file)  # one clear error now, not a receiver failing over and over
            argv += ["--auth-key-file", str(key_file)]
        argv += tls_argv(args)
        if args.reuseport:
            argv.append("--reuseport")
        if args.verbose:
            argv.append("--verbose")
        children.append(Child(f"receiver {camera.name} :{camera.port}", argv, tag=camera.name))
    if not children:
        raise UsageError("no cameras to run receivers for")
    return children


def _check_dest_path(config: object, camera: str, dest: Path) -> None:
    """Refuse at start a dest_path no receiver could land in: its receiver would exit at
    once, and the supervisor would restart it for ever."""
    try:
        prepare_landing_root(dest)
    except OSError as exc:
        raise ConfigError(
            f"{config}: camera {camera!r}: dest_path {dest} cannot be used: {exc.strerror}"
        ) from None


def run(args: argparse.Namespace) -> int:
    setup_logging("receivers", verbose=args.verbose)
    with metrics.served(metrics_settings(args)) as recorder:
        # The receivers it starts inherit CAMXFER_METRICS_DIR and record into its folder.
        supervisor = Supervisor(
            receiver_children(args),
            on_restart=(
                (lambda child: recorder.receiver_restarts.labels(child.tag).inc())
                if recorder is not None
                else None
            ),
        )
        stop_on_signals(supervisor.stop_event, "every receiver")
        supervisor.run()
    log.info("stopped")
    return ExitCode.OK
