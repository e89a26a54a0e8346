"""`camxfer trigger`: send a ZMQ trigger to a trigger server and, with --wait, follow the event."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camxfer.cli.common import non_negative_float, port_number
from camxfer.errors import ExitCode, TransferError, UsageError
from camxfer.fleet.curve import CurveClientKeys
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
    p.add_argument("--frame-id", help="first frame of the event, e.g. frame_camera01_000046836.jpg")
    p.add_argument("--ball-id", help="event name; frames land in <dest_path>/<ball_id>/<camera>/")
    p.add_argument("--status", metavar="EVENT", help="only ask for an event's status")
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
    p.add_argument(
        "--curve-secret",
        type=Path,
        metavar="FILE",
        help="this client's CURVE secret key (NAME.key_secret from 'camxfer keygen --curve'; "
        "its NAME.key must be in the server's --zmq-curve-clients); needs --curve-server-key",
    )
    p.add_argument(
        "--curve-server-key",
        type=Path,
        metavar="FILE",
        help="the trigger server's CURVE public key (its NAME.key); a server with another "
        "key gets nothing from this client, which then times out",
    )
    p.add_argument("--json", action="store_true", help="print the final reply or status as JSON")
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


def _progress(status: dict) -> None:
    if not sys.stderr.isatty():
        return
    totals = status.get("totals", {})
    if totals:
        print(
            f"\r{status['event']}: {totals['landed']}/{totals['asked']} frames, "
            f"{totals['bytes'] / 1e6:.0f} MB",
            end="",
            file=sys.stderr,
            flush=True,
        )


def _curve_keys(args: argparse.Namespace) -> CurveClientKeys | None:
    if args.curve_secret is None and args.curve_server_key is None:
        return None
    if args.curve_secret is None or args.curve_server_key is None:
        raise UsageError("give both --curve-secret and --curve-server-key, or neither")
    return CurveClientKeys(args.curve_secret, args.curve_server_key)


def run(args: argparse.Namespace) -> int:
    client = TriggerClient(
        args.host, args.port, timeout=args.reply_timeout, curve=_curve_keys(args)
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
            reply = client.wait(event, timeout=args.timeout, on_status=_progress)
            if sys.stderr.isatty():
                print(file=sys.stderr)
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
    if args.json:
        print(json.dumps(reply))
    elif "cameras" in reply:
        print(_summary(reply))
    else:
        print(json.dumps(reply))
    if "state" in reply and (args.wait or args.status):
        return ExitCode.OK if reply["state"] == "done" else ExitCode.FAILED
    return ExitCode.OK
