"""`camxfer verify`: re-check landed frames against the manifests beside them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camxfer.errors import ExitCode
from camxfer.manifest import MANIFEST_NAME
from camxfer.tools.verify import FolderCheck, VerifyReport, verify

DESCRIPTION = f"""\
Re-check a destination against its manifests. Every sender run that ends (send --once, or
one camera of a trigger) leaves a manifest in its destination folder,
{MANIFEST_NAME}: each file's name, size and XXH3-128 checksum. verify
re-reads every listed file and reports files missing, of another size or with other bytes,
files present but not listed, and manifests or folders that cannot be read.
"""

EPILOG = """\
examples:
  camxfer verify /srv/camxfer/frames/ball_001/camera01
      one camera's folder of one event
  camxfer verify /srv/camxfer/frames/ball_001
      every camera of the event (each sub-folder's manifest)
  camxfer verify /srv/camxfer/frames --json
      the whole destination, one JSON object (per folder: ok, files, problems, details)

A file belongs to the nearest manifest in its folder or above it; one that no manifest
covers is reported. Hidden files (receiver temporaries) are not frames and are left out.

exit codes:
  0  every manifest read, every listed file whole, nothing unlisted
  1  something is wrong (listed on stdout), or no manifest was found
  2  bad usage: DEST does not exist or is not a folder
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="re-check landed frames against their manifests (size and checksum)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dest",
        type=Path,
        metavar="DEST",
        help="a destination folder: one camera's, an event's, or a whole --out-dir "
        "(searched recursively for manifests)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of the summary (default: human-readable lines)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    report = verify(args.dest)
    if args.json:
        print(json.dumps(report.to_json()), flush=True)
    else:
        print_report(report)
    return ExitCode.OK if report.ok else ExitCode.FAILED


def print_report(report: VerifyReport) -> None:
    out = sys.stdout
    for check in report.checks:
        if check is report.uncovered and not report.folders:
            print(f"FAIL  no manifest at or below {report.root}", file=out)
        elif check is report.uncovered:
            print(f"FAIL  outside every manifest: {check.problem_count} problem(s)", file=out)
        else:
            print(_headline(check), file=out)
        for problem in check.problems:
            print(f"      {problem.kind:<10} {problem.name}: {problem.detail}", file=out)
        if check.problem_count > len(check.problems):
            print(f"      ... and {check.problem_count - len(check.problems)} more", file=out)
    files = sum(check.listed for check in report.folders)
    verdict = "all match" if report.ok else f"{report.problem_count} problem(s)"
    print(
        f"verify {report.root}: {len(report.folders)} manifest(s), {files} file(s): {verdict}",
        file=out,
    )


def _headline(check: FolderCheck) -> str:
    label = check.rel
    if check.event or check.camera:
        label += f" (event {check.event or '-'}, camera {check.camera or '-'})"
    if check.ok:
        return f"ok    {label}: {check.listed} file(s), {check.bytes / 1e6:.1f} MB match"
    return f"FAIL  {label}: {check.problem_count} problem(s), {check.listed} file(s) listed"
