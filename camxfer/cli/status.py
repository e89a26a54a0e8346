"""`camxfer status`: one screen for this host's fleet: services, ports, backlogs, last events."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from camxfer.cli.common import add_curve_client_arguments, curve_client_keys, non_negative_int
from camxfer.errors import ExitCode
from camxfer.fleet.status import FleetStatus, gather

EXAMPLES = """\
examples:
  camxfer status                                   # services in /var/lib/camxfer
  camxfer status --run-dir /tmp/camxfer-local/run  # the local inventory's services
  camxfer status --config camera_config.json --senders-run-dir .camxfer/senders
  camxfer status --json | jq '.cameras[] | {name, backlog}'

Services are found by their pid and command files in --run-dir (written by `camxfer service`
and by the Ansible roles where systemd does not run; under systemd, use `systemctl status`).
Each service's command line tells its config and ports; the ports are probed, a trigger
server is asked for its recent events, and each camera of the configs gets its backlog:
frames in its ring-buffer folder numbered after the last frame landed for it on this host
(blank when its frames land on another host). Exit status: 0 when every service found runs
and answers on its ports, 1 otherwise.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="show this host's camxfer services, ports, camera backlogs and last events",
        description="One screen for the camxfer fleet on this host: which services run, "
        "whether their ports answer, how many frames each camera has waiting, and the "
        "trigger server's last events.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=Path("/var/lib/camxfer"),
        metavar="DIR",
        help="folder of the services' pid files (default: %(default)s)",
    )
    p.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the services' log files (default: the --run-dir)",
    )
    p.add_argument(
        "--senders-run-dir",
        type=Path,
        default=Path(".camxfer/senders"),
        metavar="DIR",
        help="folder of `camxfer senders --detach` pid files (default: %(default)s)",
    )
    p.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="also show the cameras of this camera_config.json (repeatable; default: only "
        "the configs of the services found)",
    )
    p.add_argument(
        "--events",
        type=non_negative_int,
        default=5,
        metavar="N",
        help="show the trigger server's N most recent events (default: %(default)s)",
    )
    add_curve_client_arguments(p)
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the screen"
    )
    p.set_defaults(handler=run)


def camxfer_arguments(command: list[str] | None) -> tuple[str, argparse.Namespace | None]:
    """(subcommand, parsed options) of a camxfer command line; ("other", None) for others."""
    if not command:
        return "other", None
    from camxfer.cli import COMMANDS, build_parser

    for index, word in enumerate(command):
        is_camxfer = Path(word).name == "camxfer" and (index == 0 or command[index - 1] == "-m")
        if is_camxfer and index + 1 < len(command) and command[index + 1] in COMMANDS:
            sub = command[index + 1]
            try:
                return sub, build_parser(sub).parse_args(command[index + 1 :])
            except SystemExit:  # argparse's way of saying the line does not parse
                return sub, None
    return "other", None


def run(args: argparse.Namespace) -> int:
    status = gather(
        args.run_dir,
        camxfer_arguments,
        log_dir=args.log_dir,
        senders_run_dir=args.senders_run_dir,
        configs=args.config,
        events=args.events,
        curve=curve_client_keys(args),
    )
    if args.json:
        print(json.dumps(status.to_json()))
    else:
        print(render(status))
    return ExitCode.OK if status.ok else ExitCode.FAILED


def _state(running: bool) -> str:
    return "up" if running else "DOWN"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(status: FleetStatus) -> str:
    lines = [f"services ({status.run_dir})"]
    if not status.services:
        lines.append("  none: no pid or command files here (is --run-dir right?)")
    for service in status.services:
        head = f"  {service.name:<22} {_state(service.running):<5}"
        head += f" pid {service.pid}" if service.pid else ""
        lines.append(f"{head}  [{service.kind}]")
        for endpoint in service.endpoints:
            answer = "answers" if endpoint.listening else "no answer"
            if not service.running:
                answer = "-"
            lines.append(f"      {endpoint.what:<20} {endpoint.host}:{endpoint.port:<6} {answer}")
        if service.note:
            lines.append(f"      note: {service.note}")
        if not service.running:
            lines.append(f"      log: {service.log_file}")
    if status.senders:
        lines.append("detached senders")
        for sender in status.senders:
            pid = f" pid {sender['pid']}" if sender["pid"] else ""
            lines.append(f"  {sender['name']:<22} {_state(sender['running'])}{pid}")
    if status.cameras:
        lines.append("cameras")
        lines.append(
            f"  {'camera':<12} {'side':<15} {'frames':>7} {'newest':>10} "
            f"{'last landed':>11} {'backlog':>7}  receiver"
        )
        for camera in status.cameras:
            lines.append(
                f"  {camera.name:<12} {camera.side:<15} {_number(camera.frames):>7} "
                f"{_number(camera.newest):>10} {_number(camera.last_landed):>11} "
                f"{_number(camera.backlog):>7}  {camera.receiver}"
            )
    if status.events or status.events_error:
        lines.append("recent events")
        if status.events_error:
            lines.append(f"  cannot ask the trigger server: {status.events_error}")
        lines.extend(_event_line(event) for event in status.events)
    return "\n".join(lines)


def _event_line(event: dict[str, Any]) -> str:
    totals = event.get("totals", {})
    started = event.get("started")
    when = time.strftime("%H:%M:%S", time.localtime(started)) if started else "?"
    problems = totals.get("missing", 0) + totals.get("failed", 0)
    return (
        f"  {event.get('event', '?'):<24} {event.get('state', '?'):<8} started {when}  "
        f"{totals.get('landed', 0)}/{totals.get('asked', 0)} frames, "
        f"{totals.get('bytes', 0) / 1e6:.1f} MB, {problems} missing or failed"
    )
