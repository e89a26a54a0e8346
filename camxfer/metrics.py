"""Prometheus metrics: what each camxfer process counts, and the endpoint that serves them.

Responsible for: the metric names and labels (docs/observability.md lists them), turning them
on in a process, and serving them over HTTP on `--metrics-port`. Code elsewhere asks
`recorder()` for the process's recorder and skips all metric work when it is None, so a
process without `--metrics-port` pays one attribute check per file and nothing else.
Not responsible for: when to count (the transfer code calls in once per file or once per
progress tick, never per chunk).

Several processes, one endpoint. A receiver runs worker processes (recv/server.py), `camxfer
receivers` runs one receiver process per camera, and direct-mode `camxfer senders` runs one
sender process per camera. Their counts are added up with prometheus_client's multiprocess
mode: every process writes its values to memory-mapped files named after its pid in one
private folder, and the process that serves the endpoint sums the files when scraped. We
chose it over workers reporting to their parent through a pipe because it needs no message
loop in the workers, survives a worker killed with SIGKILL (its counts stay in its file, so
counters never go backwards), and a restarted worker simply writes a new file. The folder is
made by the serving process (a fresh temporary folder, removed when it exits) and handed to
the processes it starts in the CAMXFER_METRICS_DIR environment variable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from camxfer.errors import UsageError

log = logging.getLogger("camxfer.metrics")

ENV_DIR = "CAMXFER_METRICS_DIR"  # set for child processes whose metrics a parent serves
DEFAULT_BIND = "127.0.0.1"
MAX_CAMERA_LABELS = 256  # a receiver takes camera names from senders: bound the label set
OTHER_CAMERA = "_other"
FOLDER_PREFIX = "camxfer-metrics-"  # + the serving process's pid + a random part
# Latency buckets, seconds: frames land in milliseconds on a LAN; a stalled link takes minutes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class MetricsSettings(NamedTuple):
    """Where a process serves its metrics (`--metrics-port`, `--metrics-bind`)."""

    port: int
    bind: str = DEFAULT_BIND


class Recorder:
    """Every camxfer metric, created once per process after multiprocess mode is set up."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        cam = ("camera",)
        # Receiver side.
        self.received_files = Counter(
            "camxfer_receiver_files", "Files landed durably (new files)", cam
        )
        self.received_bytes = Counter("camxfer_receiver_bytes", "Bytes of files landed", cam)
        self.received_duplicates = Counter(
            "camxfer_receiver_duplicates", "Files sent again that had already landed", cam
        )
        self.receive_failures = Counter(
            "camxfer_receiver_failures",
            "Files refused or not landed, by reason (protocol status)",
            ("camera", "reason"),
        )
        self.receiver_connections = Gauge(
            "camxfer_receiver_connections",
            "Sender connections open now",
            multiprocess_mode="livesum",
        )
        self.durable_seconds = Histogram(
            "camxfer_receiver_durable_seconds",
            "From a file's header arriving to the file being durable and acknowledged",
            cam,
            buckets=LATENCY_BUCKETS,
        )
        self.worker_restarts = Counter(
            "camxfer_receiver_worker_restarts", "Receiver worker processes restarted after dying"
        )
        self.receiver_restarts = Counter(
            "camxfer_receiver_restarts",
            "Receiver processes restarted by camxfer receivers",
            cam,
        )
        # Sender side.
        self.sent_files = Counter(
            "camxfer_sender_files", "Files acknowledged durable by the receiver", cam
        )
        self.sent_bytes = Counter("camxfer_sender_bytes", "Bytes of acknowledged files", cam)
        self.send_failures = Counter(
            "camxfer_sender_failures",
            "Frames not sent: failed, vanished, missing or abandoned",
            ("camera", "kind"),
        )
        self.send_retries = Counter("camxfer_sender_retries", "Files sent again", cam)
        self.send_in_flight = Gauge(
            "camxfer_sender_in_flight",
            "Files sent and waiting for their ack",
            cam,
            multiprocess_mode="livesum",
        )
        self.send_backlog = Gauge(
            "camxfer_sender_backlog",
            "Complete files waiting for a connection (ready, not sent yet)",
            cam,
            multiprocess_mode="livesum",
        )
        self.ack_seconds = Histogram(
            "camxfer_sender_ack_seconds",
            "From a file judged complete to its ack (durable on the receiver)",
            cam,
            buckets=LATENCY_BUCKETS,
        )
        # Trigger server.
        self.triggers = Counter(
            "camxfer_triggers", "Trigger requests, accepted or refused", ("result",)
        )
        self.events = Counter("camxfer_events", "Events ended, by final state", ("state",))
        self.events_running = Gauge(
            "camxfer_events_running", "Events running now", multiprocess_mode="livesum"
        )
        self._labels: set[str] = set()
        self._labels_lock = threading.Lock()

    def camera(self, name: str) -> str:
        """The label for camera `name`, from a bounded set (names come from the network)."""
        name = name or "-"
        if name in self._labels:
            return name
        with self._labels_lock:
            if len(self._labels) >= MAX_CAMERA_LABELS:
                return OTHER_CAMERA
            self._labels.add(name)
        return name


_recorder: Recorder | None = None
_owned_dir: Path | None = None


def recorder() -> Recorder | None:
    """This process's recorder, or None when metrics are off (the common, free case)."""
    return _recorder


def camera_from_destination(dest: str, fallback: str = "") -> str:
    """The camera a file belongs to: senders send to <ball_id>/<camera> or <camera>."""
    parts = [p for p in dest.replace("\\", "/").split("/") if p]
    return parts[-1] if parts else fallback


def _use_folder(folder: Path) -> Recorder:
    """Turn on multiprocess mode with `folder` and create the metrics (once per process)."""
    global _recorder
    if _recorder is not None:
        return _recorder
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    os.environ[ENV_DIR] = str(folder)
    # prometheus_client picks its value class when first imported; pick it again now that
    # the folder is known, whatever imported it before.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    _recorder = Recorder()
    return _recorder


def record_for_parent() -> Recorder | None:
    """In a process started by one that serves metrics (CAMXFER_METRICS_DIR set): record
    into its folder. Otherwise metrics stay off."""
    folder = os.environ.get(ENV_DIR)
    if not folder or not Path(folder).is_dir():
        return None
    return _use_folder(Path(folder))


def serve(settings: MetricsSettings) -> Recorder:
    """Create a private folder, record into it, and serve the sum of every process recording
    into it (this one, its forked workers, the children it starts) on settings.port."""
    global _owned_dir
    import tempfile  # here, as shutil below: only a process serving metrics needs them

    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    _remove_abandoned_folders()
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    _owned_dir = folder
    rec = _use_folder(folder)
    registry = CollectorRegistry()
    registry.register(_LiveGaugeSweeper(folder))
    MultiProcessCollector(registry, path=str(folder))
    try:
        start_http_server(settings.port, addr=settings.bind, registry=registry)
    except OSError as exc:
        cleanup()
        raise UsageError(
            f"cannot serve metrics on {settings.bind}:{settings.port}: {exc.strerror or exc}; "
            "choose a free --metrics-port"
        ) from None
    log.info("metrics on http://%s:%d/metrics", settings.bind, settings.port)
    return rec


def _remove_abandoned_folders() -> None:
    """Remove the folders of serving processes that died without cleaning up (SIGKILL)."""
    import shutil
    import tempfile

    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*"):
        pid_text = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            shutil.rmtree(folder, ignore_errors=True)


def cleanup() -> None:
    """Remove the private folder of the serving process (its children are gone by then)."""
    global _owned_dir
    if _owned_dir is not None:
        import shutil

        shutil.rmtree(_owned_dir, ignore_errors=True)
        _owned_dir = None


@contextlib.contextmanager
def served(settings: MetricsSettings | None) -> Iterator[Recorder | None]:
    """Serve metrics for the duration of a command (or only record for a parent, or nothing)."""
    if settings is None:
        yield record_for_parent()
        return
    rec = serve(settings)
    try:
        yield rec
    finally:
        cleanup()


class _LiveGaugeSweeper:
    """Before each scrape, forget the live gauges of processes that are gone.

    A worker killed with SIGKILL never says it died; its gauge file would keep counting its
    last connections forever. Counters and histograms of dead processes are kept (they are
    totals); only the "live" gauge files are removed, as prometheus_client's
    mark_process_dead does.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Any]:
        from prometheus_client.multiprocess import mark_process_dead

        for path in self.folder.glob("gauge_live*_*.db"):
            pid_text = path.stem.rsplit("_", 1)[-1]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                mark_process_dead(int(pid_text), str(self.folder))
        return iter(())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
