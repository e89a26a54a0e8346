"""Logging set-up shared by every command: one line per notable event, on stderr."""

from __future__ import annotations

import logging
import sys


def setup_logging(command: str, *, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s camxfer {command}[%(process)d] %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
        )
    )
    root = logging.getLogger("camxfer")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
