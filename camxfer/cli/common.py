"""Argument types shared by the subcommands: each turns bad input into one clear message."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from camxfer import auth
from camxfer.errors import UsageError
from camxfer.metrics import MetricsSettings
from camxfer.tls import TlsFiles

if TYPE_CHECKING:
    from camxfer.fleet.curve import CurveClientKeys


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0: for deadlines handed to the kernel (0 there means "never",
    and inf or nan cannot be expressed at all)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def port_number(text: str) -> int:
    value = non_negative_int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {text}")
    return value


def stop_on_signals(stop: threading.Event, what: str) -> None:
    """Set `stop` on SIGTERM or SIGINT (Ctrl-C), logging what is being stopped."""

    def request_stop(signum: int, _frame: object) -> None:
        logging.getLogger("camxfer").info("stopping %s (%s)", what, signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def add_auth_key_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, per_camera: bool = False
) -> None:
    """Add `--auth-key-file PATH` (the shared key of docs/security.md)."""
    where = ' for every camera without its own "auth_key_file" in the config' if per_camera else ""
    parser.add_argument(
        "--auth-key-file",
        type=Path,
        metavar="PATH",
        help="shared key file (64 hex digits, mode 0600; make one with 'camxfer keygen PATH')"
        f"{where}: senders must prove they hold the same key, and every file header is "
        "authenticated. Sender and receiver must both have it or both not (default: no key)",
    )


def load_auth_key(path: Path | None) -> bytes | None:
    """The key in `path`, checked (raises a one-line KeyFileError), or None without a path."""
    return auth.load_key(path) if path is not None else None


def add_tls_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, receiver: bool
) -> None:
    """Add --tls-cert/--tls-key/--tls-ca (and --tls for senders): docs/security.md, TLS."""
    if receiver:
        cert_help = "take TLS connections only, with this certificate (PEM; needs --tls-key)"
        ca_help = "also require each sender to show a certificate signed by this CA (PEM)"
    else:
        parser.add_argument(
            "--tls",
            action="store_true",
            help="speak TLS to the receiver, checking its certificate against the system's "
            "CAs and its name against --host (implied by --tls-ca)",
        )
        cert_help = "client certificate (PEM) for a receiver started with --tls-ca"
        ca_help = "speak TLS and trust only this CA (PEM) for the receiver's certificate"
    parser.add_argument(
        "--tls-cert", type=Path, metavar="FILE", help=f"{cert_help} (default: none)"
    )
    parser.add_argument(
        "--tls-key",
        type=Path,
        metavar="FILE",
        help="private key of --tls-cert (PEM, mode 0600) (default: none)",
    )
    parser.add_argument("--tls-ca", type=Path, metavar="FILE", help=f"{ca_help} (default: none)")


def tls_argv(args: argparse.Namespace) -> list[str]:
    """The TLS options of `args` again, for a child camxfer process."""
    argv = ["--tls"] if getattr(args, "tls", False) else []
    for flag, value in (
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
        ("--tls-ca", args.tls_ca),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The TLS files given, or None when TLS is off."""
    files = TlsFiles(args.tls_cert, args.tls_key, args.tls_ca)
    if getattr(args, "tls", False) or files != TlsFiles():
        return files
    return None


def add_metrics_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Add --metrics-port and --metrics-bind (see camxfer.metrics) to a command."""
    group = parser.add_argument_group("metrics")
    group.add_argument(
        "--metrics-port",
        type=port_number,
        default=None,
        metavar="PORT",
        help=f"serve Prometheus metrics of {what} on http://ADDR:PORT/metrics (default: off)",
    )
    group.add_argument(
        "--metrics-bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics endpoint binds (default: %(default)s, this host only)",
    )


def metrics_settings(args: argparse.Namespace) -> MetricsSettings | None:
    port = getattr(args, "metrics_port", None)
    return None if port is None else MetricsSettings(port, args.metrics_bind)


def add_progress_arguments(parser: argparse.ArgumentParser, *, auto_note: str = "") -> None:
    """Add --progress and --progress-interval (see camxfer.progress) to a command."""
    group = parser.add_argument_group("progress")
    group.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "off"),
        default="auto",
        help="live progress on stderr: 'bar' (redrawn in place), 'lines' (one line every "
        f"--progress-interval), 'off'; 'auto' is a bar on a terminal, else lines{auto_note} "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--progress-interval",
        type=non_negative_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between plain progress lines (default: 5)",
    )


def add_curve_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --curve-secret and --curve-server-key: the keys of a CURVE trigger client."""
    parser.add_argument(
        "--curve-secret",
        type=Path,
        metavar="FILE",
        help="this client's CURVE secret key (NAME.key_secret from 'camxfer keygen --curve'; "
        "its NAME.key must be in the server's --zmq-curve-clients); needs --curve-server-key "
        "(default: plain ZMQ, for a server without CURVE)",
    )
    parser.add_argument(
        "--curve-server-key",
        type=Path,
        metavar="FILE",
        help="the trigger server's CURVE public key (its NAME.key); a server with another "
        "key gets nothing from this client, which then times out (default: none)",
    )


def curve_client_keys(args: argparse.Namespace) -> CurveClientKeys | None:
    """The CURVE client keys given, or None for plain ZMQ; both or neither must be given."""
    if args.curve_secret is None and args.curve_server_key is None:
        return None
    if args.curve_secret is None or args.curve_server_key is None:
        raise UsageError("give both --curve-secret and --curve-server-key, or neither")
    from camxfer.fleet.curve import CurveClientKeys

    return CurveClientKeys(args.curve_secret, args.curve_server_key)
