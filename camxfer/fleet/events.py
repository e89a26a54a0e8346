"""Transfer events: one trigger = one event = one sender run per camera, and their state.

An event is named by its ball id and frame number, so a repeated trigger finds the same
event: while it runs, nothing new starts; once it has ended, a new run sends only the frames
that did not land before (the receiver would also refuse duplicates, but nothing is resent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from camxfer import metrics
from camxfer.errors import CamxferError
from camxfer.fleet.config import CameraConfig
from camxfer.frames import frame_name
from camxfer.manifest import FileEntry
from camxfer.send.manifest import EventInfo, build_manifest, deliver_manifest, file_entries
from camxfer.send.options import SendOptions
from camxfer.send.report import SendReport
from camxfer.send.sender import SendRun

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("camxfer.trigger")

_SEND_DEFAULTS = SendOptions._field_defaults
# A camera's manifest may take this long past the event's timeout, at the latest: with a
# receiver that takes connections but never answers (a wedged storage host), its 4 tries of
# 120 s each kept an event "running", and repeat triggers of it doing nothing, for 9 minutes
# past a timeout of 10 s. (`camxfer trigger --wait` waits 30 s past the default timeout.)
MANIFEST_GRACE_S = 30.0


def event_id(ball_id: str, frame_number: int) -> str:
    return f"{ball_id}-{frame_number}"


@dataclass(frozen=True)
class EventSettings:
    """How the trigger server turns a trigger into sender runs."""

    max_files: int = 800  # frames per camera, unless the camera sets max_files
    timeout: float = 300.0  # an event ends at the latest this many seconds after it starts
    # As `camxfer send` detects and sends, unless set otherwise.
    frame_timeout: float = _SEND_DEFAULTS["frame_timeout"]
    conns: int = _SEND_DEFAULTS["conns"]  # per camera, unless the camera sets conns
    lookahead: int = _SEND_DEFAULTS["lookahead"]
    stable_ms: float = _SEND_DEFAULTS["stable_ms"]
    jpeg_eoi: bool = False
    # Shared keys by camera name, for cameras whose receiver wants one (docs/security.md).
    auth_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    tls: ssl.SSLContext | None = field(default=None, repr=False)  # TLS to every receiver


@dataclass
class CameraRun:
    camera: CameraConfig
    asked: int
    first: int
    landed_names: set[str] = field(default_factory=set)  # across every run of this event
    bytes: int = 0
    report: SendReport | None = None
    error: str | None = None
    thread: threading.Thread | None = None
    files: dict[str, FileEntry] = field(default_factory=dict)  # acked, across every run
    manifest: str | None = None  # how the last run's manifest went

    def status(self) -> dict:
        report = self.report
        landed = set(self.landed_names) | set(report.landed_names if report else ())
        total_bytes = self.bytes + (report.bytes if report else 0)
        missing = failed = 0
        problems: list[dict] = []
        if report is not None and report.ended is not None:
            missing = report.missing_count + report.count("vanished")
            failed = report.count("failed") + len(report.abandoned)
            problems = report.to_json()["skipped"][:50]
        if self.error:
            failed = self.asked - len(landed)
            problems = [{"name": "*", "reason": self.error}]
        return {
            "asked": self.asked,
            "landed": len(landed),
            "missing": missing,
            "failed": failed,
            "bytes": total_bytes,
            "problems": problems,
            "manifest": self.manifest,
        }


class Event:
    def __init__(
        self, ball_id: str, frame_number: int, cameras: list[CameraConfig], settings: EventSettings
    ) -> None:
        self.id = event_id(ball_id, frame_number)
        self.ball_id = ball_id
        self.frame_number = frame_number
        self.settings = settings
        self.runs = [
            CameraRun(camera, camera.max_files or settings.max_files, frame_number)
            for camera in cameras
        ]
        self.started = time.time()
        self.ended: float | None = None
        self.ends_by: float | None = None  # time.monotonic() of the timeout, once started
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.attempt = 0

    @property
    def running(self) -> bool:
        return any(run.thread is not None and run.thread.is_alive() for run in self.runs)

    @property
    def state(self) -> str:
        if self.running or self.ended is None:
            return "running"
        ok = all(run.status()["landed"] == run.asked for run in self.runs)
        return "done" if ok else "failed"

    def start(self) -> None:
        """Start (or restart, for the frames not landed yet) one sender run per camera."""
        with self._lock:
            if self.running:
                return
            self.attempt += 1
            if (recorder := metrics.recorder()) is not None:
                recorder.events_running.inc()
            self.ended = None
            self.started = time.time()
            if self.settings.timeout:
                self.ends_by = time.monotonic() + self.settings.timeout
            for run in self.runs:
                if run.report is not None:
                    run.landed_names.update(run.report.landed_names)
                    run.bytes += run.report.bytes
                    run.report = None
                run.error = None
                if len(run.landed_names) >= run.asked:
                    continue
                run.thread = threading.Thread(
                    target=self._run_camera,
                    args=(run,),
                    name=f"event-{self.id}-{run.camera.name}",
                    daemon=True,
                )
                run.thread.start()
            threading.Thread(target=self._watch_end, daemon=True).start()

    def _options(self, run: CameraRun) -> SendOptions:
        camera = run.camera
        assert camera.src is not None
        return SendOptions(
            src_dir=Path(camera.src),
            host=camera.host,
            port=camera.port,
            pattern=camera.pattern,
            start_at=frame_name(camera.name, run.first),
            max_files=run.asked,
            dest_path=f"{self.ball_id}/{camera.name}",
            conns=camera.conns or self.settings.conns,
            timeout=self.settings.timeout,
            frame_timeout=self.settings.frame_timeout,
            lookahead=self.settings.lookahead,
            stable_ms=self.settings.stable_ms,
            jpeg_eoi=self.settings.jpeg_eoi,
            already_landed=frozenset(run.landed_names),
            auth_key=self.settings.auth_keys.get(camera.name),
            tls=self.settings.tls,
        )

    def _run_camera(self, run: CameraRun) -> None:
        sender = None
        try:
            sender = SendRun(self._options(run), stop=self.stop, keep_connection=True)
            run.report = sender.report
            sender.run()
        except CamxferError as exc:
            run.error = str(exc)
            log.warning("event %s, %s: %s", self.id, run.camera.name, exc)
        except Exception as exc:  # never let one camera's bug kill the trigger server
            run.error = f"internal error: {exc}"
            log.exception("event %s, %s crashed", self.id, run.camera.name)
        if sender is not None:
            self._land_manifest(run, sender)

    def _land_manifest(self, run: CameraRun, sender: SendRun) -> None:
        """End this camera's part of the event with its manifest (every run lists them all)."""
        run.files.update(file_entries(sender.landed_files))
        camera = run.camera.name
        info = EventInfo(self.id, self.ball_id, camera, frame_name(camera, run.first), run.asked)
        try:
            answer = deliver_manifest(
                sender.opts,
                build_manifest(info, run.files, sender.report),
                connection=sender.kept_connection,
                stop=self.stop,
                deadline=self._manifest_deadline(),
            )
        except CamxferError as exc:
            run.manifest = f"not landed: {exc}"
            log.warning("event %s, %s: %s", self.id, camera, exc)
        except Exception as exc:
            run.manifest = f"not landed: internal error: {exc}"
            log.exception("event %s, %s: manifest crashed", self.id, camera)
        else:
            run.manifest = "landed"
            log.debug("event %s, %s: manifest landed (%s)", self.id, camera, answer)

    def _manifest_deadline(self) -> float | None:
        """Until when a camera's manifest may be tried: the event's timeout plus a grace, or
        the grace from now for a run that took longer (it waited out a stalled connection)."""
        if self.ends_by is None:
            return None
        return max(self.ends_by, time.monotonic()) + MANIFEST_GRACE_S

    def _watch_end(self) -> None:
        for run in self.runs:
            if run.thread is not None:
                run.thread.join()
        self.ended = time.time()
        status = self.status()
        if (recorder := metrics.recorder()) is not None:
            recorder.events_running.dec()
            recorder.events.labels(status["state"]).inc()
        log.info(
            "event %s %s: %s",
            self.id,
            status["state"],
            ", ".join(
                f"{name} {c['landed']}/{c['asked']}" for name, c in status["cameras"].items()
            ),
            extra={"event": "event_ended", "reason": status["state"]},
        )

    def status(self) -> dict:
        cameras = {run.camera.name: run.status() for run in self.runs}
        return {
            "ok": True,
            "event": self.id,
            "state": self.state,
            "ball_id": self.ball_id,
            "frame": self.frame_number,
            "started": self.started,
            "ended": self.ended,
            "cameras": cameras,
            "totals": {
                key: sum(c[key] for c in cameras.values())
                for key in ("asked", "landed", "missing", "failed", "bytes")
            },
        }


# Ended events kept for status requests and repeat triggers; older ones are forgotten, so a
# trigger server taking events for months does not grow (~20 KiB each, measured in the soak
# test). A repeat trigger of a forgotten event sends its frames again; the receivers answer
# the landed ones as duplicates, so nothing lands twice.
MAX_EVENTS_KEPT = 1000


class EventBook:
    """All events this trigger server knows, by id."""

    def __init__(self, cameras: list[CameraConfig], settings: EventSettings) -> None:
        self.cameras = cameras
        self.settings = settings
        self.events: dict[str, Event] = {}
        self._lock = threading.Lock()

    def trigger(self, ball_id: str, frame_number: int) -> Event:
        event = self.prepare(ball_id, frame_number)
        event.start()
        return event

    def prepare(self, ball_id: str, frame_number: int) -> Event:
        """The event for this trigger, new or known, not started (yet) by this call."""
        with self._lock:
            key = event_id(ball_id, frame_number)
            event = self.events.get(key)
            if event is None:
                event = Event(ball_id, frame_number, self.cameras, self.settings)
                self.events[key] = event
                self._forget_oldest_ended()
        return event

    def _forget_oldest_ended(self) -> None:
        excess = len(self.events) - MAX_EVENTS_KEPT
        if excess <= 0:
            return
        for key in [k for k, e in self.events.items() if e.ended is not None][:excess]:
            del self.events[key]

    def get(self, key: str) -> Event | None:
        with self._lock:
            return self.events.get(key)

    def stop_all(self, wait: float = 15.0) -> None:
        with self._lock:
            events = list(self.events.values())
        for event in events:
            event.stop.set()
        deadline = time.monotonic() + wait
        for event in events:
            for run in event.runs:
                if run.thread is not None:
                    run.thread.join(max(0.0, deadline - time.monotonic()))
