"""The one exception hierarchy of camxfer and the process exit codes.

Every module raises a `CamxferError` subclass carrying a sentence an operator understands;
`camxfer.cli` prints that sentence and exits with the error's code. No traceback is shown
unless `--debug` is given.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the command ran but some work failed (a frame not landed, ...)
    USAGE = 2  # bad arguments, bad configuration, cannot connect
    INTERRUPTED = 130


class CamxferError(Exception):
    """Base of all errors camxfer reports to a user."""

    exit_code: ExitCode = ExitCode.FAILED


class UsageError(CamxferError):
    """Bad command-line input."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A configuration file or inventory value is wrong."""


class ProtocolError(CamxferError):
    """The peer sent bytes that do not follow the camxfer wire protocol."""


class UnsafePathError(CamxferError):
    """A name or destination would land outside the receiver's output folder."""


class TransferError(CamxferError):
    """A transfer could not be carried out (connection refused, receiver error, ...)."""
