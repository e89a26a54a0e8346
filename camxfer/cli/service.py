"""`camxfer service`: start, stop, restart, report camxfer services where systemd does not run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camxfer.cli.common import non_negative_float
from camxfer.errors import ExitCode, UsageError
from camxfer.fleet.service import ServiceManager, parse_endpoint

# LSB init-script convention for `status`: 3 = program is not running.
NOT_RUNNING = 3

DESCRIPTION = """\
Run a long-lived camxfer command (receivers, the trigger server, the camera simulation) as a
named service: in its own session, with a pid file in --run-dir and its output appended to
<NAME>.log in --log-dir. The Ansible roles use this on machines without systemd; where systemd
runs they install the same command as a unit instead.

Every action prints one JSON line: {"action", "changed", "name", "running", "pid", "pid_file",
"log_file", "command"} ("status" prints the same without action and changed).
"""

EPILOG = """\
examples:
  camxfer service start camxfer-receiver --run-dir /var/lib/camxfer --log-dir /var/log/camxfer \\
      -- /opt/camxfer/venv/bin/camxfer receivers --config /etc/camxfer/receivers.json
  camxfer service status camxfer-receiver --run-dir /var/lib/camxfer
  camxfer service restart camxfer-receiver -- /opt/camxfer/venv/bin/camxfer receivers ...
  camxfer service stop camxfer-receiver --run-dir /var/lib/camxfer

start does nothing ("changed": false) when the service already runs; it fails, showing the
end of the log, when the command exits within --settle seconds, or when a --ready-port does
not accept connections within --ready-timeout seconds. stop sends SIGTERM, waits
--grace seconds, then SIGKILLs what is left of the service's process group.

exit codes:
  0  done (status: the service runs)
  1  the service could not be started or stopped
  2  bad usage
  3  status only: the service does not run
"""


def _add_options(p: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress_defaults else value

    p.add_argument(
        "--run-dir",
        type=Path,
        default=default(Path("/var/lib/camxfer")),
        metavar="DIR",
        help="folder of the pid files (default: /var/lib/camxfer)",
    )
    p.add_argument(
        "--log-dir",
        type=Path,
        default=default(None),
        metavar="DIR",
        help="folder of the log files (default: the --run-dir)",
    )
    p.add_argument(
        "--settle",
        type=non_negative_float,
        default=default(1.0),
        metavar="SECONDS",
        help="start/restart: a service that exits this soon failed to start (default: 1)",
    )
    p.add_argument(
        "--grace",
        type=non_negative_float,
        default=default(15.0),
        metavar="SECONDS",
        help="stop/restart: wait this long after SIGTERM before SIGKILL (default: 15)",
    )
    p.add_argument(
        "--ready-port",
        action="append",
        default=default([]),
        metavar="HOST:PORT",
        help="start/restart: only report success once HOST:PORT accepts TCP connections "
        "(repeatable; default: do not wait)",
    )
    p.add_argument(
        "--ready-timeout",
        type=non_negative_float,
        default=default(30.0),
        metavar="SECONDS",
        help="start/restart: give up waiting for the --ready-port ports after this long "
        "(default: 30)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "service",
        help="start/stop/restart/status of a camxfer service without systemd (pid + log files)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=("start", "stop", "restart", "status"), help="what to do")
    p.add_argument("name", metavar="NAME", help="service name, e.g. camxfer-receiver")
    _add_options(p)
    # argparse cannot take options after positionals and then '--' in a subcommand, so the
    # rest of the line is taken as is and split here: options, then '--', then the command.
    p.add_argument(
        "service_command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND ...",
        help="start/restart: the command to run, after '--'",
    )
    p.set_defaults(handler=run)


def split_rest(args: argparse.Namespace) -> list[str]:
    """Parse options given after NAME into `args`; return the command (after '--')."""
    rest = list(args.service_command)
    if "--" in rest:
        cut = rest.index("--")
        options, command = rest[:cut], rest[cut + 1 :]
    elif rest and rest[0].startswith("-"):
        options, command = rest, []
    else:
        options, command = [], rest  # argparse already removed the '--'
    if options:
        parser = argparse.ArgumentParser(prog=f"camxfer service {args.action}", add_help=False)
        _add_options(parser, suppress_defaults=True)
        parser.parse_args(options, namespace=args)
    return command


def run(args: argparse.Namespace) -> int:
    command = split_rest(args)
    manager = ServiceManager(
        args.run_dir,
        args.log_dir,
        settle_s=args.settle,
        grace_s=args.grace,
        ready_s=args.ready_timeout,
    )
    if args.action in ("start", "restart"):
        if not command:
            raise UsageError(f"{args.action} needs the command to run, after '--'.")
        ready = [parse_endpoint(text) for text in args.ready_port]
        if args.action == "start":
            result = manager.start(args.name, command, ready=ready)
        else:
            result = manager.restart(args.name, command, ready=ready)
        print(json.dumps(result.to_json()), file=sys.stdout)
        return ExitCode.OK
    if command:
        raise UsageError(f"{args.action} takes no command.")
    if args.action == "stop":
        print(json.dumps(manager.stop(args.name).to_json()), file=sys.stdout)
        return ExitCode.OK
    state = manager.status(args.name)
    print(json.dumps(state.to_json()), file=sys.stdout)
    return ExitCode.OK if state.running else NOT_RUNNING
