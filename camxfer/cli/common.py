"""Argument types shared by the subcommands: each turns bad input into one clear message."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from camxfer.metrics import MetricsSettings


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
