"""`camxfer digest`: SHA-256 of the frames in a folder, as sha256sum lines or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camxfer.errors import ExitCode
from camxfer.tools.digest import digest_folder

EPILOG = """\
examples:
  camxfer digest /srv/camxfer/frames/ball_001/camera01
      every frame in the folder, as 'sha256  name' lines (like sha256sum)
  camxfer digest /srv/camxfer/ring/camera01 --json \\
      --names frame_camera01_000000010.jpg frame_camera01_000000011.jpg
      just those frames, as {"name": "sha256", ...}; a missing one is null

Hidden files (a receiver's temporary '.name' files) and sub-folders are left out.

exit codes:
  0  every frame hashed (with --names: every named frame exists)
  1  with --names: some named frame is missing (still printed, as null or '-')
  2  bad usage, or the folder does not exist (unless --missing-ok) or cannot be read
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "digest",
        help="print the SHA-256 of the frames in a folder (to verify transfers)",
        description="Print the SHA-256 digest of every frame in DIR, or of the --names given.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="folder holding the frames")
    p.add_argument(
        "--names",
        nargs="+",
        metavar="NAME",
        help="only these file names in DIR (default: every non-hidden file)",
    )
    p.add_argument(
        "--json", action="store_true", help='print one JSON object {"name": "sha256" or null}'
    )
    p.add_argument(
        "--missing-ok",
        action="store_true",
        help="a DIR that does not exist holds no frames, instead of being an error",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    digests = digest_folder(args.dir, args.names, missing_ok=args.missing_ok)
    if args.json:
        print(json.dumps(digests, sort_keys=True), file=sys.stdout)
    else:
        for name, digest in digests.items():
            print(f"{digest or '-' * 64}  {name}", file=sys.stdout)
    missing = args.names is not None and any(digest is None for digest in digests.values())
    return ExitCode.FAILED if missing else ExitCode.OK
