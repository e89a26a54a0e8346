"""`camxfer keygen`: create the shared key file, or a CURVE keypair for the trigger socket."""

from __future__ import annotations

import argparse
from pathlib import Path

from camxfer import auth
from camxfer.errors import ExitCode, UsageError

EXAMPLES = """\
examples:
  camxfer keygen /etc/camxfer/auth.key                  # shared key for senders and receivers
  camxfer keygen --curve /etc/camxfer/curve trigger-server
  camxfer keygen --curve /etc/camxfer/curve operator-01  # one keypair per trigger client

The shared key file holds 64 hexadecimal digits (32 random bytes), mode 0600; copy the same
file to every camera and storage host. A CURVE keypair is NAME.key (public, give it to the
other side) and NAME.key_secret (secret, mode 0600, stays on its host). Existing files are
never overwritten. See docs/security.md for setting keys up and rotating them.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "keygen",
        help="create a shared key file or a CURVE keypair",
        description="Create a new shared key file (mode 0600) for authenticated transfers, "
        "or with --curve a CURVE keypair for the ZMQ trigger socket.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--curve",
        action="store_true",
        help="create a CURVE keypair: PATH is a folder, NAME the key's name",
    )
    p.add_argument("path", type=Path, metavar="PATH", help="key file to create (or folder)")
    p.add_argument("name", nargs="?", metavar="NAME", help="with --curve: the keypair's name")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.curve:
        if not args.name:
            raise UsageError("--curve needs a folder and a NAME: camxfer keygen --curve DIR NAME")
        if not auth.SAFE_NAME.fullmatch(args.name):
            raise UsageError(
                f"key name {args.name!r} is not allowed; use letters, digits, '_', '-' or '.'"
            )
        from camxfer.fleet.curve import create_keypair  # imports zmq: only when asked

        public, secret = create_keypair(args.path, args.name)
        print(f"public key {public} (hand out), secret key {secret} (keep, mode 0600)")
        return ExitCode.OK
    if args.name:
        raise UsageError("NAME is only for --curve; give just the key file PATH")
    auth.write_key(args.path)
    print(f"key written to {args.path} (mode 0600); copy it to every sender and receiver host")
    return ExitCode.OK
