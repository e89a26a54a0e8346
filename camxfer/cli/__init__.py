"""The `camxfer` command line: one subcommand per tool, each in its own module here.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets
`handler=<function(args) -> int>` (and `quick_exit=True` to skip the interpreter's teardown,
see `_exit_now`). This module only dispatches and turns `CamxferError` into one line on
stderr plus an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from camxfer import __version__, logs
from camxfer.errors import CamxferError, ExitCode

# Subcommand modules, in the order `camxfer --help` lists them.
COMMANDS = (
    "send",
    "recv",
    "senders",
    "receivers",
    "trigger",
    "status",
    "generate",
    "clear",
    "digest",
    "verify",
    "events",
    "service",
    "fleet",
    "demo",
    "keygen",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camxfer",
        description="Move camera frames from ring-buffer folders to storage hosts, fast and whole.",
        epilog="Run 'camxfer COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"camxfer {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show a full traceback when a command fails"
    )
    parser.add_argument(
        "--log-json", action="store_true", help="log one JSON object per line instead of text"
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="also write the log to this file (rotated at 10 MiB, 5 kept)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f"camxfer.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"camxfer.cli.{name}":
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Import only the subcommand being run: the others pull in numpy, Pillow, zmq (~180 ms).
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    logs.output.json = args.log_json
    logs.output.file = args.log_file
    if argv is None:  # the process is ours: a command line, not a caller of main(argv)
        _settle_garbage_collector()
    code = _run(args)
    if argv is None and getattr(args, "quick_exit", False):
        _exit_now(code)
    return code


def _settle_garbage_collector() -> None:
    """Collect less often, and never again look at what start-up made.

    camxfer makes few reference cycles, but the collector still ran every 700 new objects
    and walked every module object in its oldest generation: 1000 small frames over
    loopback took 4-7 % less wall time with this (interleaved A/B, two rounds of 8-10).
    Receiver workers are forked, so they inherit both settings.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _run(args: argparse.Namespace) -> int:
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a reader gone shows here, not in the interpreter's teardown
        return code
    except BrokenPipeError:
        # Whoever read our output has gone (`camxfer events | head -3`): there is no one left
        # to tell. Output still buffered goes to /dev/null, so the final flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED
    except CamxferError as exc:
        if args.debug:
            raise
        print(f"camxfer {args.command}: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _exit_now(code: int) -> NoReturn:
    """End a command whose work is done without the interpreter's teardown (freeing every
    module and object: 13-25 ms at the end of each `send --once` here), once its output and
    logs are written. Its threads are finished or daemons, and it holds nothing else."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to tell anyone
            stream.flush()
    os._exit(code)
