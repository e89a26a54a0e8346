"""Watching a sender run from the outside: a periodic snapshot, and the metrics it feeds.

`SendRun` calls each observer's `tick()` from its planner thread every `observer_interval`
seconds and once more at the end, never from the connection workers and never per chunk, so
watching costs the transfer nothing it would notice. Progress displays (camxfer.progress) and
Prometheus metrics (camxfer.metrics) are both observers.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from camxfer import metrics
from camxfer.send.options import SendOptions
from camxfer.send.report import SendReport


class SendProgress(NamedTuple):
    """Where a run stands: what landed, what is waiting, what went wrong, how long it took."""

    files: int  # acknowledged durable
    bytes: int
    failed: int  # failed, vanished, missing and abandoned so far
    retries: int
    seconds: float
    queued: int  # complete, waiting for a connection
    in_flight: int  # sent, waiting for the ack
    expected: int | None  # files the run will send in all, when that is known
    ended: bool

    @property
    def mb_per_s(self) -> float:
        return self.bytes / max(self.seconds, 1e-9) / 1e6


def progress_of(
    report: SendReport, *, queued: int, outstanding: int, expected: int | None, ended: bool
) -> SendProgress:
    failed = (
        report.count("failed")
        + report.count("vanished")
        + report.missing_count
        + len(report.abandoned)
    )
    return SendProgress(
        files=report.files,
        bytes=report.bytes,
        failed=failed,
        retries=report.retries,
        seconds=report.seconds,
        queued=queued,
        in_flight=max(outstanding - queued, 0),
        expected=expected,
        ended=ended,
    )


class SendObserver(Protocol):
    def tick(self, progress: SendProgress, report: SendReport) -> None: ...


class MetricsObserver:
    """Turns a run's snapshots into Prometheus counters, gauges and latencies, by camera.

    Counters move by the difference since the last tick, and gauges by the change of this
    run's own share, so two runs for one camera (two events at once) add up instead of
    overwriting each other.
    """

    def __init__(self, recorder: metrics.Recorder, camera: str) -> None:
        self.recorder = recorder
        self.camera = recorder.camera(camera)
        self._files = self._bytes = self._retries = self._latencies = 0
        self._failures: dict[str, int] = {}
        self._queued = self._in_flight = 0

    def tick(self, progress: SendProgress, report: SendReport) -> None:
        rec, cam = self.recorder, self.camera
        if report.files > self._files:
            rec.sent_files.labels(cam).inc(report.files - self._files)
            rec.sent_bytes.labels(cam).inc(report.bytes - self._bytes)
            self._files, self._bytes = report.files, report.bytes
        if report.retries > self._retries:
            rec.send_retries.labels(cam).inc(report.retries - self._retries)
            self._retries = report.retries
        histogram = rec.ack_seconds.labels(cam)
        for latency in report.latencies[self._latencies :]:
            histogram.observe(latency)
        self._latencies = len(report.latencies)
        kinds = {
            "failed": report.count("failed"),
            "vanished": report.count("vanished"),
            "missing": report.missing_count,
            "abandoned": len(report.abandoned),
        }
        for kind, count in kinds.items():
            if count > self._failures.get(kind, 0):
                rec.send_failures.labels(cam, kind).inc(count - self._failures.get(kind, 0))
                self._failures[kind] = count
        queued = 0 if progress.ended else progress.queued
        in_flight = 0 if progress.ended else progress.in_flight
        rec.send_backlog.labels(cam).inc(queued - self._queued)
        rec.send_in_flight.labels(cam).inc(in_flight - self._in_flight)
        self._queued, self._in_flight = queued, in_flight


def metrics_observer(opts: SendOptions) -> MetricsObserver | None:
    """An observer feeding this process's metrics, or None when metrics are off."""
    recorder = metrics.recorder()
    if recorder is None:
        return None
    camera = metrics.camera_from_destination(opts.dest_path, opts.src_dir.name)
    return MetricsObserver(recorder, camera)
