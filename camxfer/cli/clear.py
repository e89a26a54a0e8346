"""`camxfer clear`: empty a destination folder, one camera's frames, or every camera's dest_path.

This module parses the options, shows what will go, asks, and prints what went; the checks
and the deletion itself live in `camxfer.tools.clear`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from camxfer.errors import ExitCode, UsageError
from camxfer.fleet.config import add_config_argument, load_config
from camxfer.tools.clear import (
    ClearTarget,
    check_destination,
    clear,
    survey,
    targets_for_all,
    targets_for_camera,
)

DESCRIPTION = """\
Empty destination folders, keeping the folders themselves.

Give exactly one of DEST, --camera NAME or --all. Before deleting, it shows what will be
removed (folder and counts) and asks; with no answer on stdin (closed, or not a terminal and
nothing piped) it refuses unless --yes is given.
"""

EPILOG = """\
examples:
  camxfer clear /srv/camxfer/frames
      show the counts, ask, then empty /srv/camxfer/frames (the folder stays)
  camxfer clear --camera camera04 --yes
      remove <dest_path>/*/camera04 (every ball id) for camera04 of ./camera_config.json;
      other cameras sharing that dest_path keep their frames
  camxfer clear --all --config /etc/camxfer/camera_config.json
      empty the dest_path of every camera in that file, each distinct folder once

safety:
  Refused: /, your home folder, system folders themselves (/etc, /usr, /var, /srv, /mnt, ...)
  and any folder holding one of them, anything that is not an existing folder, and a
  destination that is itself a symlink. Folders below /srv, /mnt or /var/lib are fine.
  Symlinks inside are removed as links; what they point to is untouched. Folders where
  another filesystem is mounted inside the destination are left alone.

exit codes:
  0  removed (or nothing to remove)
  1  some entries could not be removed (listed on stderr), or the answer was not yes
  2  bad options or config, destination refused, or no answer and no --yes
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clear",
        help="empty destination folders safely (everything, one camera's, or all cameras')",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "dest",
        nargs="?",
        type=Path,
        metavar="DEST",
        help="folder to empty; everything inside goes, the folder itself is kept",
    )
    which.add_argument(
        "--camera",
        metavar="NAME",
        help=(
            "remove only this camera's folders <dest_path>/*/NAME, dest_path taken from "
            "--config (default: every camera)"
        ),
    )
    which.add_argument(
        "--all",
        action="store_true",
        help="empty the dest_path of every camera in --config, each distinct folder once",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="remove without asking (default: show the counts and ask on stdin)",
    )
    parser.set_defaults(handler=run)


def run(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    home: Path | None = None,
) -> int:
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    home = Path.home() if home is None else home

    targets = _targets(args, home)
    plans = [(target, survey(target)) for target in targets]
    if all(tally.total == 0 for _, tally in plans):
        for target, _ in plans:
            print(f"Nothing to remove: {target.describe()} is already empty.", file=stdout)
        return ExitCode.OK

    if not args.yes:
        for target, tally in plans:
            print(f"Will remove {target.describe()}: {tally}.", file=stderr)
        if not _confirm(stdin, stderr):
            print("Answer was not yes; nothing was deleted.", file=stderr)
            return ExitCode.FAILED

    failed = False
    for target, _ in plans:
        outcome = clear(target)
        print(f"Removed {target.describe()}: {outcome.removed}.", file=stdout)
        for problem in outcome.problems:
            print(f"camxfer clear: not removed: {problem}", file=stderr)
        failed = failed or bool(outcome.problems)
    return ExitCode.FAILED if failed else ExitCode.OK


def _targets(args: argparse.Namespace, home: Path) -> list[ClearTarget]:
    if args.dest is not None:
        return [check_destination(args.dest, home=home)]
    if args.camera is not None:
        return targets_for_camera(load_config(args.config), args.camera, home=home)
    if args.all:
        return targets_for_all(load_config(args.config, need_dest=True), home=home)
    raise UsageError("Say what to clear: a folder DEST, --camera NAME or --all (see --help).")


def _confirm(stdin: TextIO | None, prompt_to: TextIO) -> bool:
    print("Remove them? [y/N] ", end="", file=prompt_to, flush=True)
    try:
        answer = "" if stdin is None or stdin.closed else stdin.readline()
    except (OSError, ValueError):
        answer = ""  # stdin unusable (e.g. detached): the same as no answer
    if not _is_terminal(stdin):
        print(file=prompt_to)  # a piped answer is not echoed; end the prompt line ourselves
    if not answer:
        raise UsageError(
            "No answer on stdin (closed or not a terminal), so nothing was deleted; "
            "run it in a terminal, or pass --yes to clear without asking."
        )
    return answer.strip().lower() in ("y", "yes")


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and not stream.closed and stream.isatty()
    except (OSError, ValueError):
        return False
