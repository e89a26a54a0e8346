"""`camxfer senders`: one sender per camera of camera_config.json, directly or on ZMQ triggers."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from camxfer import logs, metrics
from camxfer.auth import load_key
from camxfer.cli.common import (
    add_auth_key_argument,
    add_metrics_arguments,
    add_tls_arguments,
    metrics_settings,
    non_negative_float,
    non_negative_int,
    port_number,
    positive_int,
    stop_on_signals,
    tls_argv,
    tls_files,
)
from camxfer.errors import ExitCode, UsageError
from camxfer.fleet import detached
from camxfer.fleet.config import (
    CameraConfig,
    add_camera_argument,
    add_config_argument,
    load_config,
)
from camxfer.fleet.curve import CurveServerKeys
from camxfer.fleet.events import EventBook, EventSettings
from camxfer.fleet.trigger_server import TriggerServer
from camxfer.logs import setup_logging
from camxfer.tls import client_context

log = logging.getLogger("camxfer.fleet")

# Connections per camera when neither --conns nor the camera says: this many in all for the
# host, at least MIN_CONNS per camera. Six cameras with eight each (48 connections, and as
# many threads in one trigger server) took 175 ms for an event of ten small frames a camera
# on two cores, 125 ms with two each; events of 1.5 MiB frames were no slower (docs/performance).
SHARED_CONNS = 8
MIN_CONNS = 2

EXAMPLES = """\
examples:
  camxfer senders --zmq --zmq-port 5555        # deployment: wait for triggers
  camxfer senders --once                        # send every camera's backlog now, then exit
  camxfer senders --detach --timeout 600        # direct mode in the background
  camxfer senders --list                        # detached senders and whether they run
  camxfer senders --stop                        # stop the detached senders

Trigger mode: a request {"frame_id": "frame_camera01_000046836.jpg", "ball_id": "ball_001"}
sends, for every camera, frames 46836 .. 46836+max_files-1 (that camera's own file names) to
<dest_path>/ball_001/<camera>/ on its receiver. The reply is {"ok": true, "event": ID} at once;
{"status": ID} returns the event's progress. Direct mode sends to <dest_path>/<camera>/.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "senders",
        help="run one sender per camera from camera_config.json (directly or on ZMQ triggers)",
        description="Start a sender for every camera of the config, or serve ZMQ triggers that "
        "send an event's frames from every camera.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(p)
    add_camera_argument(p)
    trigger = p.add_argument_group("trigger mode")
    trigger.add_argument("--zmq", action="store_true", help="serve ZMQ triggers (REP socket)")
    trigger.add_argument(
        "--zmq-port", type=port_number, default=5555, help="trigger port (default: %(default)s)"
    )
    trigger.add_argument(
        "--zmq-bind",
        default="0.0.0.0",
        metavar="ADDR",
        help="address the trigger socket binds (default: %(default)s)",
    )
    trigger.add_argument(
        "--zmq-curve-secret",
        type=Path,
        metavar="FILE",
        help="CURVE-encrypt and authenticate the trigger socket with this server secret key "
        "(NAME.key_secret from 'camxfer keygen --curve'); needs --zmq-curve-clients "
        "(default: plain ZMQ)",
    )
    trigger.add_argument(
        "--zmq-curve-clients",
        type=Path,
        metavar="DIR",
        help="folder of the client public keys (*.key) allowed to send triggers; "
        "read at start, so restart to add or remove a client (default: none)",
    )
    trigger.add_argument(
        "--frame-timeout",
        type=non_negative_float,
        default=EventSettings.frame_timeout,
        metavar="SECONDS",
        help="wait this long for a gap in the frames before reporting it missing "
        "(default: %(default)g)",
    )
    direct = p.add_argument_group("direct mode")
    direct.add_argument(
        "--once",
        action="store_true",
        help="send each camera's backlog and exit (default: keep watching)",
    )
    direct.add_argument(
        "--detach",
        action="store_true",
        help="run the senders in the background, with a pid and log file each in --run-dir",
    )
    direct.add_argument("--list", action="store_true", help="list the detached senders")
    direct.add_argument("--stop", action="store_true", help="stop the detached senders")
    direct.add_argument(
        "--run-dir",
        type=Path,
        default=Path(".camxfer/senders"),
        help="pid and log files of detached senders (default: %(default)s)",
    )
    both = p.add_argument_group("both modes")
    both.add_argument(
        "--max-files",
        type=non_negative_int,
        default=None,
        help="frames per camera (a camera's own max_files wins); trigger mode "
        f"default {EventSettings.max_files}, direct mode default unlimited",
    )
    both.add_argument(
        "--timeout",
        type=non_negative_float,
        default=None,
        metavar="SECONDS",
        help="trigger mode: an event ends at the latest after this long "
        f"(default {EventSettings.timeout:g}); direct mode: each sender stops after this long "
        "(default: no limit)",
    )
    both.add_argument(
        "--conns",
        type=positive_int,
        default=None,
        help="connections per camera unless the camera sets conns (default: "
        f"{SHARED_CONNS} shared by this host's cameras, at least {MIN_CONNS} each: "
        "8 for one camera, 4 for two, 2 for three or more)",
    )
    add_auth_key_argument(both, per_camera=True)
    add_tls_arguments(both, receiver=False)
    both.add_argument("--verbose", action="store_true", help="log every file sent")
    add_metrics_arguments(
        p, "the trigger server, or of every sender started in direct mode (by camera)"
    )
    p.set_defaults(handler=run)


def _cameras(args: argparse.Namespace) -> list[CameraConfig]:
    config = load_config(args.config, need_src=True)
    return list(config.select(args.camera))


def conns_per_camera(args: argparse.Namespace, cameras: int) -> int:
    """--conns, or the host's share: SHARED_CONNS split between its cameras, at least
    MIN_CONNS each (one sends while another waits for its ack)."""
    return args.conns or max(MIN_CONNS, SHARED_CONNS // max(cameras, 1))


def _key_file(camera: CameraConfig, args: argparse.Namespace) -> Path | None:
    return camera.auth_key_file or getattr(args, "auth_key_file", None)


def _auth_keys(cameras: list[CameraConfig], args: argparse.Namespace) -> dict[str, bytes]:
    """Each camera's shared key, read and checked now (a bad key file is one clear error)."""
    keys = {}
    for camera in cameras:
        path = _key_file(camera, args)
        if path is not None:
            keys[camera.name] = load_key(path)
    return keys


def _curve_keys(args: argparse.Namespace) -> CurveServerKeys | None:
    if args.zmq_curve_secret is None and args.zmq_curve_clients is None:
        return None
    if args.zmq_curve_secret is None or args.zmq_curve_clients is None:
        raise UsageError("give both --zmq-curve-secret and --zmq-curve-clients, or neither")
    return CurveServerKeys(args.zmq_curve_secret, args.zmq_curve_clients)


def run(args: argparse.Namespace) -> int:
    setup_logging("senders", verbose=args.verbose)
    if args.list or args.stop:
        return _manage_detached(args)
    if args.zmq:
        if args.detach or args.once:
            raise UsageError("--zmq serves triggers; it does not take --detach or --once")
        with metrics.served(metrics_settings(args)):
            return _serve_triggers(args)
    if args.detach and args.metrics_port is not None:
        raise UsageError(
            "--metrics-port cannot serve detached senders (they outlive this command); "
            "run them in the foreground under a service manager, or use --zmq"
        )
    with metrics.served(metrics_settings(args)):
        return _direct(args)


def _serve_triggers(args: argparse.Namespace) -> int:
    if args.max_files == 0:  # an event of 0 frames would end "done" having sent nothing
        raise UsageError("--max-files must be at least 1 with --zmq (frames per camera per event)")
    cameras = _cameras(args)
    given = {"max_files": args.max_files, "timeout": args.timeout}
    settings = EventSettings(
        **{name: value for name, value in given.items() if value is not None},
        frame_timeout=args.frame_timeout,
        conns=conns_per_camera(args, len(cameras)),
        auth_keys=_auth_keys(cameras, args),
        tls=client_context(tls) if (tls := tls_files(args)) is not None else None,
    )
    book = EventBook(cameras, settings)
    curve = _curve_keys(args)
    server = TriggerServer(book, f"tcp://{args.zmq_bind}:{args.zmq_port}", curve=curve)

    stop_on_signals(server.stop, "the trigger server")
    log.info(
        "trigger server on %s:%d for %s%s",
        args.zmq_bind,
        args.zmq_port,
        ", ".join(c.name for c in book.cameras),
        " (CURVE: known client keys only)" if curve else "",
    )
    server.serve()
    book.stop_all()
    log.info("stopped")
    return ExitCode.OK


def sender_argv(camera: CameraConfig, args: argparse.Namespace, conns: int) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "camxfer",
        *logs.child_flags(camera.name),
        "send",
        "--src-dir",
        str(camera.src),
        "--host",
        camera.host,
        "--port",
        str(camera.port),
        "--pattern",
        camera.pattern,
        "--dest-path",
        camera.name,
        "--conns",
        str(camera.conns or conns),
    ]
    max_files = camera.max_files if camera.max_files is not None else args.max_files
    if max_files:
        argv += ["--max-files", str(max_files)]
    if args.timeout:
        argv += ["--timeout", str(args.timeout)]
    key_file = _key_file(camera, args)
    if key_file is not None:
        argv += ["--auth-key-file", str(key_file)]
    argv += tls_argv(args)
    if args.once:
        argv.append("--once")
    if args.verbose:
        argv.append("--verbose")
    return argv


def _direct(args: argparse.Namespace) -> int:
    cameras = _cameras(args)
    conns = conns_per_camera(args, len(cameras))
    _auth_keys(cameras, args)  # refuse a bad key file before any sender starts
    if (tls := tls_files(args)) is not None:
        client_context(tls)
    if args.detach:
        for camera in cameras:
            info = detached.start(args.run_dir, camera.name, sender_argv(camera, args, conns))
            print(f"{camera.name}: pid {info.pid}, log {info.log_file}")
        return ExitCode.OK
    processes: dict[str, subprocess.Popen] = {}
    stop = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stop.set()
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for camera in cameras:
        if stop.is_set():
            break
        # Own process group: a terminal's Ctrl-C reaches only this process, which forwards it
        # once; a sender that sees SIGINT twice abandons the files it has in flight.
        processes[camera.name] = subprocess.Popen(sender_argv(camera, args, conns), process_group=0)
    while any(p.poll() is None for p in processes.values()):
        time.sleep(0.1)
    failed = [name for name, p in processes.items() if p.returncode != 0]
    for name, process in processes.items():
        log.info("%s: sender exited with status %d", name, process.returncode)
    return ExitCode.FAILED if failed else ExitCode.OK


def _manage_detached(args: argparse.Namespace) -> int:
    entries = detached.list_all(args.run_dir)
    if not entries:
        print(f"no detached senders in {args.run_dir}")
        return ExitCode.OK
    for entry in entries:
        if args.stop:
            detached.stop(args.run_dir, entry.name)
            print(f"{entry.name}: stopped")
        else:
            state = f"running, pid {entry.pid}" if entry.running else "not running"
            print(f"{entry.name}: {state}, log {entry.log_file}")
    return ExitCode.OK
