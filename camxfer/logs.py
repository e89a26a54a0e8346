"""Logging set-up shared by every command: one line per notable event.

Human-readable lines on stderr by default; `--log-json` makes each line a JSON object (for
log shippers); `--log-file PATH` also writes them to a file rotated at 10 MiB (5 kept).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_KEEP = 5
# Fields a log call may attach with extra={...}: JSON lines carry them as keys of their own,
# so a log shipper can filter on "event": "file_failed" without parsing the message.
FIELDS = ("event", "peer", "camera", "file", "reason", "bytes", "files", "worker", "restarts")


class LogOutput:
    def __init__(self) -> None:
        self.json = False
        self.file: Path | None = None


# Set once by the command line (global flags) before a subcommand sets up its logging.
output = LogOutput()


class JsonFormatter(logging.Formatter):
    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "command": self.command,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def child_flags(name: str) -> list[str]:
    """Global log flags for a camxfer process this one starts (a camera's receiver or
    sender): the same format, and its own log file beside ours (`x.log` -> `x.camera01.log`),
    since two processes rotating one file would lose lines."""
    flags = ["--log-json"] if output.json else []
    if output.file is not None:
        path = output.file
        flags += ["--log-file", str(path.with_name(f"{path.stem}.{name}{path.suffix}"))]
    return flags


def setup_logging(command: str, *, verbose: bool = False) -> None:
    if output.json:
        formatter: logging.Formatter = JsonFormatter(command)
    else:
        formatter = logging.Formatter(
            f"%(asctime)s camxfer {command}[%(process)d] %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
        )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if output.file is not None:
        # Imported here, only with --log-file: it costs every command ~7 ms at start.
        from logging.handlers import RotatingFileHandler

        output.file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            RotatingFileHandler(output.file, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP)
        )
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger("camxfer")
    root.handlers[:] = handlers
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
