"""`camxfer send`: push complete frames from a folder to a receiver over parallel connections."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from camxfer import metrics, progress
from camxfer.cli.common import (
    add_auth_key_argument,
    add_metrics_arguments,
    add_progress_arguments,
    add_tls_arguments,
    load_auth_key,
    metrics_settings,
    non_negative_float,
    non_negative_int,
    port_number,
    positive_float,
    positive_int,
    tls_files,
)
from camxfer.errors import ExitCode, TransferError, UsageError
from camxfer.logs import setup_logging
from camxfer.send.manifest import EventInfo, build_manifest, deliver_manifest, file_entries
from camxfer.send.observe import SendProgress
from camxfer.send.options import SendOptions
from camxfer.send.report import SendReport
from camxfer.send.sender import SendRun
from camxfer.tls import client_context

log = logging.getLogger("camxfer.send")

# The options' defaults are SendOptions' own: a library caller and the command line get the
# same run.
DEFAULTS = SendOptions._field_defaults

EXAMPLES = """\
examples:
  # send the frames after frame 46835, 799 of them, to a receiver started with --use-dest-paths
  camxfer send --src-dir /data/camera01 --host 10.0.0.5 --port 50001 \\
      --start-after frame_camera01_000046835.jpg --max-files 799 --dest-path ball_001/camera01

  # send what is there now and exit, with machine-readable statistics
  camxfer send --src-dir ./frames --port 50001 --once --json-stats

A frame is sent once it is complete: the frame --lookahead numbers later exists, the writer
closed it (inotify), or its size and mtime held still for --stable-ms. A file is counted sent
only when the receiver acknowledged it durable. A --once run ends with a manifest (each
file's name, size and XXH3-128, and this report) that the receiver checks and lands as
.camxfer-manifest.json in the destination; 'camxfer verify' and 'camxfer events' read it.
Exit status: 0 all sent (and the manifest landed), 1 some file failed, vanished or went
missing, or the manifest did not land (also when the receiver could not be reached or
refused the connection), 2 bad usage.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "send",
        help="send complete frames from a folder to a receiver",
        description="Watch a folder of frames and push each complete one to a camxfer receiver "
        "over parallel TCP connections.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to send")
    what.add_argument("--src-dir", type=Path, required=True, help="folder to send frames from")
    what.add_argument(
        "--pattern", default=DEFAULTS["pattern"], help="file name pattern (default: %(default)s)"
    )
    what.add_argument(
        "--start-after",
        metavar="NAME",
        help="only names strictly after this one, e.g. frame_camera01_000046835.jpg "
        "(default: from the first)",
    )
    what.add_argument(
        "--start-at",
        metavar="NAME",
        help="only names from this one on, inclusive (default: from the first)",
    )
    what.add_argument(
        "--max-files",
        type=non_negative_int,
        default=DEFAULTS["max_files"],
        help="stop after this many files (frame numbers, for numbered frames: "
        "a frame reported missing uses its slot); 0 = unlimited (default)",
    )
    what.add_argument(
        "--preserve-structure",
        action="store_true",
        help="also send files in subfolders, keeping their relative paths",
    )
    what.add_argument(
        "--cleanup-part-files",
        action="store_true",
        help="remove stale *.part files (older than 60 s) under --src-dir first",
    )

    where = p.add_argument_group("where to send")
    where.add_argument(
        "--host", default=DEFAULTS["host"], help="receiver address (default: %(default)s)"
    )
    where.add_argument("--port", type=port_number, required=True, help="receiver port")
    where.add_argument(
        "--dest-path",
        default=DEFAULTS["dest_path"],
        help="folder on the receiver: relative paths go under its --out-dir; an "
        "absolute path must lie inside its --out-dir (receiver needs "
        "--use-dest-paths). Default: the receiver's --out-dir",
    )
    add_auth_key_argument(where)
    add_tls_arguments(where, receiver=False)

    when = p.add_argument_group("completion detection")
    when.add_argument(
        "--lookahead",
        type=non_negative_int,
        default=DEFAULTS["lookahead"],
        help="a frame is complete when the frame this many numbers later exists "
        "(default: %(default)s; 0 turns this signal off)",
    )
    when.add_argument(
        "--stable-ms",
        type=non_negative_float,
        default=DEFAULTS["stable_ms"],
        help="or when its size and mtime hold still this long (default: %(default)g)",
    )
    when.add_argument(
        "--settle-ms",
        type=non_negative_float,
        default=DEFAULTS["settle_ms"],
        help="a file modified less than this long ago is complete only on a stronger signal "
        "(lookahead, the writer closed it, --jpeg-eoi): a writer pausing between pieces must "
        "not look finished (default: %(default)g; 0 = the seed's behaviour)",
    )
    when.add_argument(
        "--jpeg-eoi",
        action="store_true",
        help="JPEG frames: also require the end-of-image marker (FF D9); a frame "
        "that has it is complete at once",
    )
    when.add_argument(
        "--file-wait-ms",
        type=non_negative_float,
        default=DEFAULTS["file_wait_ms"],
        help="how often to check for a frame that does not exist yet (default: %(default)g)",
    )
    when.add_argument(
        "--poll-ms",
        type=non_negative_float,
        default=DEFAULTS["poll_ms"],
        help="how often to look for new and completed frames (default: %(default)g); inotify wakes "
        "earlier, and with it the folder is read in full once a second, in between only the "
        "names inotify saw come and go",
    )
    when.add_argument(
        "--frame-timeout",
        type=non_negative_float,
        default=DEFAULTS["frame_timeout"],
        metavar="SECONDS",
        help="how long to wait for a missing frame once later frames exist, "
        "before reporting it missing (default: %(default)g)",
    )
    when.add_argument(
        "--no-inotify",
        action="store_true",
        help="do not watch the folder with inotify (e.g. on NFS); poll only",
    )

    how = p.add_argument_group("transfer")
    how.add_argument(
        "--conns",
        type=positive_int,
        default=DEFAULTS["conns"],
        help="parallel TCP connections (default: %(default)s)",
    )
    how.add_argument(
        "--window",
        type=positive_int,
        default=DEFAULTS["window"],
        help="files in flight per connection before waiting for an ack (default: %(default)s)",
    )
    how.add_argument(
        "--retries",
        type=non_negative_int,
        default=DEFAULTS["retries"],
        help="attempts per file before it is reported failed (default: %(default)s)",
    )
    how.add_argument(
        "--ack-timeout",
        type=positive_float,
        default=DEFAULTS["ack_timeout"],
        metavar="SECONDS",
        help="give up on a connection that acknowledges nothing this long (default: %(default)g)",
    )
    how.add_argument(
        "--sndbuf",
        type=non_negative_int,
        default=DEFAULTS["sndbuf"],
        metavar="BYTES",
        help="fixed socket send buffer for long links (default: %(default)s, Linux autotuning)",
    )
    how.add_argument(
        "--rcvbuf",
        type=non_negative_int,
        default=DEFAULTS["rcvbuf"],
        metavar="BYTES",
        help="fixed socket receive buffer (default: %(default)s, Linux autotuning)",
    )

    run_group = p.add_argument_group("run")
    run_group.add_argument(
        "--once",
        action="store_true",
        help="send the current backlog and exit (default: keep watching)",
    )
    run_group.add_argument(
        "--timeout",
        type=non_negative_float,
        default=DEFAULTS["timeout"],
        metavar="SECONDS",
        help="stop after this many seconds; 0 = no limit (default)",
    )
    run_group.add_argument(
        "--json-stats",
        action="store_true",
        help="print one JSON object with the run's statistics at the end",
    )
    run_group.add_argument(
        "--no-manifest",
        action="store_true",
        help="with --once: do not end the run with a manifest (default: send one, which the "
        "receiver lands as .camxfer-manifest.json in the destination; needed only for "
        "receivers older than manifests)",
    )
    run_group.add_argument("--verbose", action="store_true", help="log every file sent")
    add_progress_arguments(p, auto_note=" (off with --json-stats)")
    add_metrics_arguments(p, "this sender")
    p.set_defaults(handler=run, quick_exit=True)


def options_from_args(args: argparse.Namespace) -> SendOptions:
    if args.start_after and args.start_at:
        raise UsageError("give --start-after or --start-at, not both")
    if not args.src_dir.is_dir():
        raise UsageError(f"--src-dir {args.src_dir} does not exist or is not a folder")
    return SendOptions(
        src_dir=args.src_dir,
        host=args.host,
        port=args.port,
        pattern=args.pattern,
        start_after=args.start_after,
        start_at=args.start_at,
        conns=args.conns,
        lookahead=args.lookahead,
        stable_ms=args.stable_ms,
        settle_ms=args.settle_ms,
        file_wait_ms=args.file_wait_ms,
        poll_ms=args.poll_ms,
        frame_timeout=args.frame_timeout,
        max_files=args.max_files,
        dest_path=args.dest_path,
        preserve_structure=args.preserve_structure,
        cleanup_part_files=args.cleanup_part_files,
        once=args.once,
        timeout=args.timeout,
        jpeg_eoi=args.jpeg_eoi,
        window=args.window,
        retries=args.retries,
        ack_timeout=args.ack_timeout,
        sndbuf=args.sndbuf,
        rcvbuf=args.rcvbuf,
        use_inotify=not args.no_inotify,
        verbose=args.verbose,
        auth_key=load_auth_key(args.auth_key_file),
        tls=client_context(tls) if (tls := tls_files(args)) is not None else None,
    )


def run(args: argparse.Namespace) -> int:
    setup_logging("send", verbose=args.verbose)
    opts = options_from_args(args)
    stop, abandon = threading.Event(), threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning("second %s: abandoning files in flight", signal.Signals(signum).name)
            abandon.set()
        else:
            log.info("%s: finishing files in flight, then stopping", signal.Signals(signum).name)
            stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    view = progress.make_view(
        args.progress,
        sys.stderr,
        interval=args.progress_interval,
        emit=log.info,
        quiet_default=args.json_stats,
    )
    observer = _ProgressObserver(view) if view is not None else None
    manifest = opts.once and not args.no_manifest
    # Metrics first: the run takes this process's recorder when it is made.
    with metrics.served(metrics_settings(args)):
        sender = SendRun(
            opts, stop=stop, abandon=abandon, observer=observer, keep_connection=manifest
        )
        try:
            with progress.keep_logs_above(view):
                try:
                    report = sender.run()
                finally:
                    if view is not None:
                        view.close()
        except TransferError as exc:
            # A run that ends in a fatal error (the receiver refused us) still owes a script
            # its one JSON object, saying what did get sent and why the run stopped.
            if args.json_stats:
                print(
                    json.dumps({**sender.report.to_json(), "ok": False, "error": str(exc)}),
                    flush=True,
                )
            raise
    manifest_ok = True
    stats = report.to_json()
    if manifest:
        manifest_ok, stats["manifest"] = _send_manifest(opts, sender)
    if args.json_stats:
        print(json.dumps(stats), flush=True)
    else:
        log.info("%s", report.summary_line())
    return ExitCode.OK if report.ok and manifest_ok else ExitCode.FAILED


def _send_manifest(opts: SendOptions, sender: SendRun) -> tuple[bool, dict]:
    """End a --once run with its manifest; (landed?, what to add to the JSON stats)."""
    info = EventInfo(first_frame=opts.start_at, asked=opts.max_files or None)
    manifest = build_manifest(info, file_entries(sender.landed_files), sender.report)
    try:
        answer = deliver_manifest(opts, manifest, connection=sender.kept_connection)
    except TransferError as exc:
        log.warning("%s", exc)
        return False, {"landed": False, "error": str(exc)}
    log.info("manifest landed: %s", answer)
    return True, {"landed": True, "files": len(manifest.files)}


class _ProgressObserver:
    """Feeds a sender run's snapshots to a progress view."""

    def __init__(self, view: progress.View) -> None:
        self.view = view

    def tick(self, snapshot: SendProgress, report: SendReport) -> None:
        self.view.show(
            progress.Figures(
                files=snapshot.files,
                expected=snapshot.expected,
                bytes=snapshot.bytes,
                failed=snapshot.failed,
                seconds=snapshot.seconds,
            )
        )
