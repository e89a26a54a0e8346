"""`camxfer fleet`: run one of the fleet's Ansible playbooks and show progress per host and task."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  camxfer fleet site -i inventory/local            # install and start everything on this machine
  camxfer fleet generate -e camxfer_frames_count=120
  camxfer fleet trigger -e frame_id=frame_camera01_000000010.jpg -e ball_id=ball_001
  camxfer fleet playbooks/site.yml -i inventory/production --check --diff
  camxfer fleet stop

PLAYBOOK is a path, or a name looked up in ./playbooks/ (site, generate, trigger, status,
cleanup, stop, demo). Without -i the inventory named in the project's ansible.cfg is used
(inventory/local, the whole fleet on this machine). Needs the fleet extra:
pip install 'camxfer[fleet]' (ansible-core and ansible-runner).

exit status: the playbook's own (0 success, 2 a task failed, 4 a host was unreachable, ...);
2 also when ansible-playbook could not be run at all.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fleet",
        help="run a fleet playbook (deploy, generate, trigger, status, cleanup, stop) via Ansible",
        description="Run one of the fleet's Ansible playbooks with ansible-runner, printing each "
        "play, task and host result as it happens and a recap at the end.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("playbook", metavar="PLAYBOOK", help="playbook file or name (e.g. site)")
    p.add_argument(
        "-i",
        "--inventory",
        metavar="PATH",
        help="inventory folder or file (default: the one in ansible.cfg, inventory/local)",
    )
    p.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="VARS",
        help="extra variables as for ansible-playbook: 'k=v k2=v2', JSON, or @file "
        "(repeatable; default: none)",
    )
    p.add_argument("--check", action="store_true", help="dry run: report what would change")
    p.add_argument("--diff", action="store_true", help="show the changes made to files")
    p.add_argument(
        "-l", "--limit", metavar="HOSTS", help="only these hosts (Ansible pattern; default: all)"
    )
    p.add_argument(
        "-t", "--tags", metavar="TAGS", help="only tasks with these tags (default: all tasks)"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="pass -v to ansible-playbook")
    p.add_argument(
        "--keep-artifacts",
        action="store_true",
        help="keep ansible-runner's private data folder (events, stdout) and print its path",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from camxfer.fleet.ansible_run import request_from, run_playbook

    request = request_from(
        args.playbook,
        cwd=Path.cwd(),
        inventory=args.inventory,
        extra_vars=args.extra_vars,
        check=args.check,
        diff=args.diff,
        limit=args.limit,
        tags=args.tags,
        verbosity=args.verbose,
    )
    result = run_playbook(request, out=sys.stdout, keep_artifacts=args.keep_artifacts)
    return result.rc
