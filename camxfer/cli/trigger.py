"""`camxfer trigger`: send a ZMQ trigger to a trigger server and, with --wait, follow the event."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from camxfer import progress
from camxfer.cli.common import (
    add_curve_client_arguments,
    add_progress_arguments,
    curve_client_keys,
    non_negative_float,
    port_number,
)
from camxfer.errors import ExitCode, TransferError, UsageError
from camxfer.fleet.trigger_client import EventStillRunning, TriggerClient

EXAMPLES = """\
examples:
  camxfer trigger --frame-id frame_camera01_000046836.jpg --ball-id ball_001
  camxfer trigger --host 10.0.0.11 --frame-id frame_camera01_000046836.jpg --ball-id ball_001 --wait
  camxfer trigger --status ball_001-46836 --json

Exit status: 0 when every asked frame landed (or the trigger was accepted, without --wait),
1 when a frame is missing or failed, the event was still running at --timeout, or the server
refused the request; 2 on bad usage or when the server cannot be reached.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trigger",
        help="send a transfer trigger to a camera host's trigger server",
        description="Ask a trigger server (camxfer senders --zmq) to send the frames of an event.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="trigger server address (default: %(default)s)"
    )
    p.add_argument("--port", type=port_number, default=5555, help="ZMQ port (default: %(default)s)")
    p.add_argument(
        "--frame-id",
        help="first frame of the event, e.g. frame_camera01_000046836.jpg "
        "(required unless --status)",
    )
    p.add_argument(
        "--ball-id",
        help="event name; frames land in <dest_path>/<ball_id>/<camera>/ "
        "(required unless --status)",
    )
    p.add_argument(
        "--status",
        metavar="EVENT",
        help="only ask for an event's status, e.g. ball_001-46836 (default: send a trigger)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the event to its end, then print a per-camera summary",
    )
    p.add_argument(
        "--timeout",
        type=non_negative_float,
        default=330.0,
        metavar="SECONDS",
        help="give up waiting after this long (default: 330)",
    )
    p.add_argument(
        "--reply-timeout",
        type=non_negative_float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for each reply before retrying (default: 5)",
    )
    add_curve_client_arguments(p)
    p.add_argument("--json", action="store_true", help="print the final reply or status as JSON")
    add_progress_arguments(p, auto_note=" (with --wait)")
    p.set_defaults(handler=run)


def _summary(status: dict) -> str:
    lines = [f"event {status['event']}: {status['state']}"]
    for name, cam in status["cameras"].items():
        line = (
            f"  {name}: {cam['landed']}/{cam['asked']} landed, {cam['missing']} missing, "
            f"{cam['failed']} failed, {cam['bytes'] / 1e6:.1f} MB"
        )
        lines.append(line)
        lines.extend(f"    {p['name']}: {p['reason']}" for p in cam.get("problems", [])[:5])
    return "\n".join(lines)


def _show_status(view: progress.View) -> Callable[[dict], None]:
    """An on_status callback feeding the event's totals to a progress view."""
    started = time.monotonic()  # our clock: the server's may be another host's

    def show(status: dict) -> None:
        totals = status.get("totals")
        if totals:
            view.show(
                progress.Figures(
                    files=totals["landed"],
                    expected=totals["asked"],
                    bytes=totals["bytes"],
                    failed=totals["missing"] + totals["failed"],
                    seconds=time.monotonic() - started,
                )
            )

    return show


def run(args: argparse.Namespace) -> int:
    client = TriggerClient(
        args.host, args.port, timeout=args.reply_timeout, curve=curve_client_keys(args)
    )
    try:
        if args.status:
            reply = client.status(args.status)
            event = args.status
        else:
            if not args.frame_id or not args.ball_id:
                raise UsageError("give --frame-id and --ball-id (or --status EVENT)")
            reply = client.trigger(args.frame_id, args.ball_id)
            event = reply.get("event")
        if not reply.get("ok"):
            print(f"camxfer trigger: refused: {reply.get('error')}", file=sys.stderr)
            return ExitCode.FAILED
        if args.wait and event:
            view = progress.make_view(
                args.progress, sys.stderr, label=event, interval=args.progress_interval
            )
            try:
                reply = client.wait(
                    event, timeout=args.timeout, on_status=_show_status(view) if view else None
                )
            finally:
                if view is not None:
                    view.close()
            if not reply.get("ok"):  # e.g. the server restarted and forgot the event
                print(f"camxfer trigger: event {event}: {reply.get('error')}", file=sys.stderr)
                return ExitCode.FAILED
    except EventStillRunning as exc:
        # Not every asked frame has landed (yet): that is a failed wait, not a usage error.
        print(f"camxfer trigger: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except TransferError as exc:
        print(f"camxfer trigger: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    finally:
        client.close()
    if args.json:
        print(json.dumps(reply))
    elif "cameras" in reply:
        print(_summary(reply))
    else:
        print(json.dumps(reply))
    if "state" in reply and (args.wait or args.status):
        return ExitCode.OK if reply["state"] == "done" else ExitCode.FAILED
    return ExitCode.OK
