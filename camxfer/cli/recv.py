"""`camxfer recv`: run a receiver that lands files from senders under an output folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camxfer import metrics
from camxfer.cli.common import (
    add_auth_key_argument,
    add_metrics_arguments,
    add_tls_arguments,
    load_auth_key,
    metrics_settings,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
    stop_on_signals,
    tls_files,
)
from camxfer.errors import ExitCode, UsageError
from camxfer.logs import setup_logging
from camxfer.recv.direct import POLICIES
from camxfer.recv.landing import prepare_landing_root
from camxfer.recv.server import (
    MAX_DEFAULT_WORKERS,
    ListenSettings,
    ReceiverServer,
    default_workers,
    raise_open_file_limit,
)
from camxfer.recv.session import ReceiverSettings
from camxfer.tls import server_context

log = logging.getLogger("camxfer.recv")

EXAMPLES = """\
examples:
  camxfer recv --port 50001 --out-dir /srv/frames --workers 4 --use-dest-paths
  camxfer recv --port 50001 --out-dir ./landed            # legacy: files land in ./landed

Each file is written to a temporary name in its final folder, fsynced and linked into
place, so a partially received file is never visible under its final name.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recv",
        help="receive files from senders and land them atomically",
        description="Listen for camxfer senders and land their files, whole and durable, "
        "under --out-dir.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--listen-ip",
        default=ListenSettings.listen_ip,
        help="address to listen on (default: %(default)s, every interface)",
    )
    parser.add_argument("--port", type=port_number, required=True, help="TCP port to listen on")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("./"),
        help="folder files land under (default: the current folder)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=default_workers(),
        help="worker processes sharing the port; each takes its connections in threads "
        f"(default: one per CPU, at most {MAX_DEFAULT_WORKERS}: %(default)s here)",
    )
    parser.add_argument(
        "--reuseport",
        action="store_true",
        help="give each worker its own SO_REUSEPORT socket so the kernel spreads "
        "connections (default: workers share one listening socket)",
    )
    parser.add_argument(
        "--use-dest-paths",
        action="store_true",
        help="accept each sender's --dest-path (a folder inside --out-dir); "
        "without it files land directly in --out-dir and a sender that names "
        "a destination is refused",
    )
    parser.add_argument(
        "--expect-count-first",
        action="store_true",
        help="require each connection to announce how many files follow "
        "(senders do with --once) and report connections that send more or fewer",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a landed file whose content differs (default: refuse, "
        "keep the landed file and report an error to the sender)",
    )
    add_direct_io_argument(parser)
    parser.add_argument(
        "--max-file-size",
        type=positive_int,
        default=ReceiverSettings.max_file_size,
        metavar="BYTES",
        help=f"largest file accepted (default: {ReceiverSettings.max_file_size >> 30} GiB)",
    )
    parser.add_argument(
        "--max-conns",
        type=positive_int,
        default=ListenSettings.max_connections,
        help="open connections per worker; more are closed (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=ReceiverSettings.idle_timeout,
        metavar="SECONDS",
        help="close a connection idle this long between files (default: %(default)g)",
    )
    parser.add_argument(
        "--io-timeout",
        type=positive_float,
        default=ReceiverSettings.io_timeout,
        metavar="SECONDS",
        help="close a connection that stalls this long inside a file or the "
        "handshake, or whose handshake or file header is not whole this long after "
        "its first byte; also about how soon an idle connection whose sender vanished "
        "(link cut, host off) is found dead by TCP keepalive (default: %(default)g)",
    )
    add_auth_key_argument(parser)
    parser.add_argument(
        "--handshake-timeout",
        type=non_negative_float,
        default=ReceiverSettings.handshake_timeout,
        metavar="SECONDS",
        help="with --auth-key-file or TLS: close a connection that has not authenticated "
        "this long after connecting (with TLS: stalled this long in its TLS handshake), "
        "however slowly its bytes trickle in (default: %(default)g)",
    )
    add_tls_arguments(parser, receiver=True)
    parser.add_argument("--verbose", action="store_true", help="log every file landed")
    add_metrics_arguments(parser, "this receiver (every worker process)")
    parser.set_defaults(handler=run)


def add_direct_io_argument(parser: argparse.ArgumentParser) -> None:
    """--direct-io, also taken by `camxfer receivers` for the receivers it runs."""
    parser.add_argument(
        "--direct-io",
        choices=POLICIES,
        default=ReceiverSettings.direct_io,
        help="write files with O_DIRECT, past the page cache: 'auto' does while other "
        "writers keep the machine's dirty data high (cameras on the same host, a busy "
        "disk), where it costs less CPU and cuts the latency tail, and while copying into "
        "the page cache measures slow (a VM whose memory balloon takes back free pages); "
        "'always'; 'never'. "
        "Filesystems without direct I/O are written normally (default: auto)",
    )


def _usable_out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out-dir {path} exists and is not a folder")
    try:
        prepare_landing_root(path)
    except OSError as exc:
        what = "cannot write there" if path.is_dir() else "cannot create it"
        raise UsageError(f"--out-dir {path}: {what}: {exc.strerror}") from None
    return path


def settings_from_args(args: argparse.Namespace) -> tuple[ReceiverSettings, ListenSettings]:
    """What the receiver and its listening socket are asked for; a bad key, TLS file or
    --out-dir is a UsageError here, before anything listens."""
    auth_key = load_auth_key(args.auth_key_file)
    tls = tls_files(args)
    if tls is not None:
        server_context(tls)  # each worker makes its own; a bad file is one clear error now
    _usable_out_dir(args.out_dir.absolute())
    settings = ReceiverSettings(
        out_dir=args.out_dir.absolute(),
        use_dest_paths=args.use_dest_paths,
        expect_count_first=args.expect_count_first,
        overwrite=args.overwrite,
        max_file_size=args.max_file_size,
        idle_timeout=args.idle_timeout,
        io_timeout=args.io_timeout,
        verbose=args.verbose,
        auth_key=auth_key,
        handshake_timeout=args.handshake_timeout,
        tls=tls,
        direct_io=args.direct_io,
    )
    listen = ListenSettings(
        listen_ip=args.listen_ip,
        port=args.port,
        workers=args.workers,
        reuseport=args.reuseport,
        max_connections=args.max_conns,
    )
    return settings, listen


def run(args: argparse.Namespace) -> int:
    setup_logging("recv", verbose=args.verbose)
    settings, listen = settings_from_args(args)
    raise_open_file_limit()
    server = ReceiverServer(settings, listen)

    stop_on_signals(server.stop, "the receiver")
    with metrics.served(metrics_settings(args)):
        server.serve(
            on_ready=lambda: log.info(
                "listening on %s:%d, %d worker(s), landing under %s%s%s%s",
                args.listen_ip,
                args.port,
                args.workers,
                settings.out_dir,
                " (destination paths on)" if args.use_dest_paths else "",
                ", senders must authenticate" if settings.auth_key else "",
                ", TLS only" if settings.tls else "",
            )
        )
    log.info("stopped")
    return ExitCode.OK
