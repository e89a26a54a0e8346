"""The sender's end of an event: build its manifest from a finished run and deliver it.

Called once every file of the run is acknowledged (or given up on): by `camxfer send --once`
and by each camera run of the trigger server. The manifest goes on one of the run's
connections, kept open for it; failing that, on a new one that announces zero files (so
receivers started with --expect-count-first take it too).
Not here: checking the files or writing the manifest (the receiver does, `recv/manifest.py`).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import NamedTuple

from camxfer.errors import TransferError
from camxfer.manifest import (
    MAX_SKIPPED,
    FileEntry,
    Manifest,
    RunRecord,
    Skipped,
    iso_time,
)
from camxfer.protocol import MAX_MANIFEST_BYTES, Reply, Status
from camxfer.send.connection import Connection, ConnectionLost, ConnectionSettings
from camxfer.send.options import SendOptions
from camxfer.send.report import SendReport

ATTEMPTS = 4
MIN_REPLY_S = 120.0  # the receiver re-reads every listed file before it answers


class ManifestNotLanded(TransferError):
    """The receiver did not land the run's manifest (the files themselves are unaffected)."""


class EventInfo(NamedTuple):
    """What the manifest says about the event this run is part of (all optional)."""

    event: str | None = None
    ball_id: str | None = None
    camera: str | None = None
    first_frame: str | None = None
    asked: int | None = None


def file_entries(landed: dict[str, tuple[int, bytes]]) -> dict[str, FileEntry]:
    """Manifest entries from a run's {name: (size, checksum)} of acknowledged files."""
    return {name: FileEntry(name, size, digest.hex()) for name, (size, digest) in landed.items()}


def run_record(report: SendReport, now: float) -> RunRecord:
    data = report.to_json()
    return RunRecord(
        started=iso_time(now - report.seconds),
        ended=iso_time(now),
        host=socket.gethostname(),
        files=data["files"],
        duplicates=data["duplicates"],
        bytes=data["bytes"],
        seconds=data["seconds"],
        retries=data["retries"],
        latency_p50_ms=data["latency_ms"]["p50"],
        latency_p99_ms=data["latency_ms"]["p99"],
        failed=data["failed"],
        vanished=data["vanished"],
        missing=data["missing"],
        abandoned=data["abandoned"],
        skipped=tuple(Skipped(s["name"], s["reason"]) for s in data["skipped"][:MAX_SKIPPED]),
    )


def build_manifest(
    info: EventInfo, files: dict[str, FileEntry], report: SendReport, now: float | None = None
) -> Manifest:
    now = time.time() if now is None else now
    return Manifest(
        event=info.event,
        ball_id=info.ball_id,
        camera=info.camera,
        first_frame=info.first_frame,
        asked=info.asked,
        files=dict(files),
        runs=[run_record(report, now)],
        updated=iso_time(now),
    )


def deliver_manifest(
    opts: SendOptions,
    manifest: Manifest,
    *,
    connection: Connection | None = None,
    stop: threading.Event | None = None,
    deadline: float | None = None,
) -> str:
    """Send the manifest to the run's receiver and destination; returns the receiver's answer.

    It goes on `connection` (a run's connection kept open for it, which this closes) or on a
    new one. A lost connection or a retryable answer is tried again on a new connection (a
    few times, with backoff); a refusal raises ManifestNotLanded at once. With `deadline` (a
    time.monotonic() value) no attempt starts or waits for its reply past it: a receiver
    that takes connections but never answers holds the caller until then, not for
    ATTEMPTS x MIN_REPLY_S (8 minutes).
    """
    try:
        body = manifest.encode()
        if len(body) > MAX_MANIFEST_BYTES:
            raise ManifestNotLanded(
                f"manifest of {len(body)} bytes is over the limit of {MAX_MANIFEST_BYTES}"
            )
        settings = ConnectionSettings(
            opts.host,
            opts.port,
            opts.connect_timeout,
            max(opts.ack_timeout, MIN_REPLY_S),
            opts.sndbuf,
            opts.rcvbuf,
            # A new connection proves the key and speaks TLS like the run's own did.
            auth_key=opts.auth_key,
            tls=opts.tls,
        )
        problem = ""
        made = 0
        for attempt in range(1, ATTEMPTS + 1):
            if attempt > 1 and (stop or threading.Event()).wait(0.2 * 2**attempt):
                break  # stopping: the first attempt was the one that counted
            reply_s = settings.io_timeout
            if deadline is not None:
                reply_s = min(reply_s, deadline - time.monotonic())
                if reply_s <= 0:
                    break
            made += 1
            try:
                conn = connection or Connection(
                    settings._replace(io_timeout=reply_s), announce_count=0
                )
                connection = None
                reply = _exchange(conn, opts.dest_path, body, reply_s)
            except ConnectionLost as exc:
                problem = str(exc)
                continue
            if reply.status == Status.OK:
                return reply.message
            problem = f"the receiver answered {reply.status.name}: {reply.message}"
            if not reply.status.retryable:
                if reply.status == Status.BAD_REQUEST and "type" in reply.message:
                    problem += " (a receiver older than manifests? send with --no-manifest)"
                raise ManifestNotLanded(f"manifest not landed: {problem}")
        raise ManifestNotLanded(f"manifest not landed after {made} attempt(s): {problem}")
    finally:
        if connection is not None:
            connection.close()


def _exchange(conn: Connection, dest: str, body: bytes, timeout: float) -> Reply:
    try:
        seq = conn.send_manifest(dest, body)
        while True:
            for reply in conn.wait_replies(timeout):
                if reply.seq == seq:
                    if reply.status == Status.OK:
                        _say_end(conn)
                    return reply
    finally:
        conn.close()


def _say_end(conn: Connection) -> None:
    """Close the connection with END, as every sender connection ends."""
    try:
        end = conn.send_end()
        while not any(reply.seq == end for reply in conn.wait_replies(5.0)):
            pass
    except ConnectionLost:
        pass  # the manifest landed; a lost END reply changes nothing
