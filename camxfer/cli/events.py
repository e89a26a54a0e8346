"""`camxfer events`: what each trigger landed, per camera, read from the storage side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camxfer.cli.common import positive_int
from camxfer.errors import CamxferError, ExitCode, UsageError
from camxfer.fleet.config import add_config_argument, load_config
from camxfer.manifest import MANIFEST_NAME
from camxfer.tools.events import EventRecord, read_events

DEFAULT_LIMIT = 20

DESCRIPTION = f"""\
Show the events that landed on this storage host, newest first, with one line per camera:
frames asked, landed, skipped, MB, how long the last run took and its latency. Each camera's
part of an event ends with a manifest ({MANIFEST_NAME}) in its destination folder; this
command reads those, so it works on any storage host, with or without the services running.
"""

EPILOG = """\
examples:
  camxfer events
      the events under every camera's dest_path in ./camera_config.json
  camxfer events --out-dir /srv/camxfer/frames --limit 5
      the 5 newest events under that folder (a receiver's --out-dir)
  camxfer events ball_001-46836
      one event: its cameras, and every skipped frame with its reason
  camxfer events ball_001-46836 --json
      the same as one JSON object (cameras.<name>.skipped_files lists name and reason)

Skipped reasons: missing (never appeared in the camera's folder), vanished (deleted before it
was sent), failed (the receiver refused it, or it kept changing), abandoned (the run was
stopped first), unverified (acknowledged, but not found whole when the manifest was written).
A plain 'camxfer send --once' has no event id: it is listed under its folder's path.

exit codes:
  0  listed (also when there are no events yet)
  1  EVENT not found, or with EVENT: some camera did not land every frame asked
  2  bad usage: a folder that does not exist, a bad config file
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "events",
        help="list the events that landed here, per camera (from the manifests)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "event",
        nargs="?",
        metavar="EVENT",
        help="show only this event, e.g. ball_001-46836 (<ball id>-<frame number>); "
        "default: list the newest events",
    )
    p.add_argument(
        "--out-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="read the manifests under this folder (repeat for several); default: every "
        "camera's dest_path in --config",
    )
    add_config_argument(p)
    p.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"list at most this many events (default: {DEFAULT_LIMIT}; ignored with EVENT)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print JSON instead of tables: {"events": [...]} or, with EVENT, the one event',
    )
    p.set_defaults(handler=run)


def _roots(args: argparse.Namespace) -> list[Path]:
    if args.out_dir:
        for folder in args.out_dir:
            if not folder.is_dir():
                raise UsageError(f"--out-dir {folder} does not exist or is not a folder.")
        return list(args.out_dir)
    config = load_config(args.config)
    roots: list[Path] = []
    for camera in config.cameras:
        # Cameras landing on another storage host have no folder here: nothing to read.
        folder = camera.dest_path
        if folder is not None and folder.is_dir() and folder not in roots:
            roots.append(folder)
    return roots


def run(args: argparse.Namespace) -> int:
    book = read_events(_roots(args))
    for bad in book.unreadable:
        print(f"camxfer events: skipped {bad.path}: {bad.reason}", file=sys.stderr)
    if args.event is not None:
        event = book.find(args.event)
        if event is None:
            raise CamxferError(
                f"no event {args.event!r} here; 'camxfer events' lists the events there are."
            )
        if args.json:
            print(json.dumps(event.to_json()), flush=True)
        else:
            print_event(event, details=True)
        return ExitCode.OK if event.complete else ExitCode.FAILED
    shown = book.events[: args.limit]
    if args.json:
        print(json.dumps({"events": [event.to_json() for event in shown]}), flush=True)
        return ExitCode.OK
    if not shown:
        print("no events yet (no manifests found)")
    for index, event in enumerate(shown):
        if index:
            print()
        print_event(event, details=False)
    if len(book.events) > len(shown):
        print(f"\n... {len(book.events) - len(shown)} older event(s); raise --limit to see them")
    return ExitCode.OK


def _cell(value: float | int | None, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def print_event(event: EventRecord, *, details: bool) -> None:
    state = "complete" if event.complete else "INCOMPLETE"
    head = f"event {event.id}  {state}  updated {event.updated or '-'}"
    if event.first_frame:
        head += f"  from {event.first_frame}"
    print(head)
    print(
        f"  {'camera':<16}{'asked':>7}{'landed':>8}{'skipped':>8}{'MB':>9}"
        f"{'seconds':>9}{'p50 ms':>9}{'p99 ms':>9}{'runs':>6}"
    )
    for part in event.parts:
        latest = part.manifest.latest
        print(
            f"  {part.camera:<16}{_cell(part.asked):>7}{part.landed:>8}{len(part.skipped):>8}"
            f"{part.manifest.bytes / 1e6:>9.1f}"
            f"{_cell(latest.seconds if latest else None, '.2f'):>9}"
            f"{_cell(latest.latency_p50_ms if latest else None, '.1f'):>9}"
            f"{_cell(latest.latency_p99_ms if latest else None, '.1f'):>9}"
            f"{len(part.manifest.runs):>6}"
        )
    if not details:
        return
    for part in event.parts:
        print(f"  {part.camera}: {part.folder}")
        for skipped in part.skipped:
            print(f"    skipped {skipped.name}: {skipped.reason}")
