"""Live camera simulation: cameras writing frames into ring-buffer folders in real time.

Responsible for: the timing of a simulated camera — frame k is due at start + k/fps, and it is
written the way camera software writes it: the final name is opened, the bytes go in as a few
pieces spread over the frame period, then the file is closed. A reader can therefore see a
partially written file under its final name; that is exactly what the sender's completion
detection must handle. Also: keeping only the newest N frames (the ring), reporting when each
frame was closed, and counting frames that were late or dropped.
Not responsible for: making the JPEG bytes (`camxfer.tools.generate` makes a pool up front, so
writing stays cheap), finding folders or printing (`camxfer.cli.generate`).

Python API, e.g. for a latency benchmark:

    sizes = SizeRange.from_mib(1.0, 2.0)
    pool = make_pool(FrameMaker("camera01", plan_image(1600, 1200, sizes, 1), sizes), 0, 16)
    stop = threading.Event()
    closed: list[FrameCompletion] = []
    thread = threading.Thread(
        target=run_live,
        args=({"camera01": folder}, {"camera01": pool}, LiveSettings(fps=30, ring=100), stop),
        kwargs={"on_complete": closed.append},
    )
    thread.start(); ...; stop.set(); thread.join()

Each FrameCompletion carries the time.monotonic() and time.time() at which the file was closed
(`CompletionLog(path)` as on_complete appends `name<TAB>time.time()` lines to a file instead).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from camxfer.errors import CamxferError
from camxfer.frames import frame_name

# Cameras start this long after run_live is called, so every thread is running before the
# first frame is due and all cameras share one schedule.
_START_LEAD_S = 0.05
_TICK_S = 1.0


class LiveCameraError(CamxferError):
    """A simulated camera could not write a frame (folder gone, disk full, ...)."""


@dataclass(frozen=True)
class LiveSettings:
    """How the simulated cameras write. Shared by every camera of a run."""

    fps: float = 30.0
    ring: int = 0  # keep only the newest `ring` frames per camera; 0 keeps all
    start: int = 0  # number of the first frame
    count: int | None = None  # frames (written or dropped) per camera; None = until stopped
    pieces: int = 8  # write() calls per frame
    spread: float = 0.8  # the pieces span this fraction of the frame period, then close
    # A camera more than this far behind schedule drops the frames it missed, as a real camera
    # whose writer cannot keep up loses frames (their numbers are skipped).
    max_behind_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be more than 0, got {self.fps}")
        if self.ring < 0 or self.start < 0 or (self.count is not None and self.count < 0):
            raise ValueError("ring, start and count must not be negative")
        if self.pieces < 1 or not 0 <= self.spread <= 1:
            raise ValueError("pieces must be at least 1 and spread within 0..1")

    @property
    def period(self) -> float:
        return 1.0 / self.fps


@dataclass(frozen=True)
class FrameCompletion:
    """One frame closed by a simulated camera: from here on its bytes are complete."""

    camera: str
    name: str
    path: Path
    size: int
    closed_monotonic: float  # time.monotonic(): compare within this process
    closed_wall: float  # time.time(): compare across processes and hosts


@dataclass(frozen=True)
class CameraStats:
    camera: str
    written: int = 0
    bytes: int = 0
    late: int = 0  # written, but started more than one frame period after it was due
    dropped: int = 0  # skipped because the camera was more than max_behind_s behind
    behind: int = 0  # frames due but not yet started, at the moment of the snapshot


@dataclass(frozen=True)
class LiveSummary:
    cameras: tuple[CameraStats, ...]
    seconds: float

    @property
    def written(self) -> int:
        return sum(stats.written for stats in self.cameras)

    @property
    def bytes(self) -> int:
        return sum(stats.bytes for stats in self.cameras)

    @property
    def late(self) -> int:
        return sum(stats.late for stats in self.cameras)

    @property
    def dropped(self) -> int:
        return sum(stats.dropped for stats in self.cameras)


CompletionCallback = Callable[[FrameCompletion], None]


class LiveCamera:
    """One simulated camera. `run()` blocks until `stop` is set or `count` frames are done."""

    def __init__(
        self,
        camera: str,
        folder: Path,
        frames: Sequence[bytes],
        settings: LiveSettings,
        stop: threading.Event,
        *,
        on_complete: CompletionCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not frames:
            raise ValueError("a live camera needs at least one frame to write")
        self.camera = camera
        self.folder = folder
        self.frames = frames
        self.settings = settings
        self.stop = stop
        self.on_complete = on_complete
        self.clock = clock
        self.wall_clock = wall_clock
        self._t0: float | None = None
        self._next_slot = 0  # slots before this one are written or dropped
        self._stats = CameraStats(camera)
        self._ring: deque[Path] = deque()

    def stats(self) -> CameraStats:
        """A snapshot, safe to take from another thread while the camera runs."""
        stats, t0, next_slot = self._stats, self._t0, self._next_slot
        if t0 is None:
            return stats
        due = math.floor((self.clock() - t0) * self.settings.fps) + 1
        if self.settings.count is not None:
            due = min(due, self.settings.count)
        # The frame being written is on time; only frames after it count as behind.
        return replace(stats, behind=max(0, due - next_slot - 1))

    def run(self, t0: float | None = None) -> CameraStats:
        """Write frames on schedule from `t0` (a `clock()` time; default: now) until stopped."""
        settings = self.settings
        period = settings.period
        self._t0 = t0 = self.clock() if t0 is None else t0
        max_behind = max(1, math.floor(settings.max_behind_s * settings.fps))
        while not self.stop.is_set():
            slot = self._next_slot
            if settings.count is not None and slot >= settings.count:
                break
            due = t0 + slot * period
            now = self.clock()
            if now < due:
                if self.stop.wait(due - now):
                    break
            else:
                missed = math.floor((now - due) / period)
                if missed > max_behind:
                    skip = missed if settings.count is None else min(missed, settings.count - slot)
                    self._stats = replace(self._stats, dropped=self._stats.dropped + skip)
                    self._next_slot = slot + skip
                    continue
                if missed >= 1:
                    self._stats = replace(self._stats, late=self._stats.late + 1)
            self._write(slot, due)
            self._next_slot = slot + 1
        return self.stats()

    def _write(self, slot: int, due: float) -> None:
        settings = self.settings
        name = frame_name(self.camera, settings.start + slot)
        path = self.folder / name
        data = memoryview(self.frames[slot % len(self.frames)])
        step = settings.period * settings.spread / max(settings.pieces - 1, 1)
        cuts = [len(data) * piece // settings.pieces for piece in range(settings.pieces + 1)]
        try:
            # Unbuffered, so each piece is one write(2) and the file visibly grows piece by
            # piece under its final name, as with real camera software.
            with open(path, "wb", buffering=0) as file:
                for piece in range(settings.pieces):
                    if piece:
                        delay = due + piece * step - self.clock()
                        # Once stopping, finish the frame at once: never leave it truncated.
                        if delay > 0 and not self.stop.is_set():
                            self.stop.wait(delay)
                    chunk = data[cuts[piece] : cuts[piece + 1]]
                    while chunk:
                        chunk = chunk[file.write(chunk) :]
            closed_monotonic, closed_wall = self.clock(), self.wall_clock()
        except OSError as exc:
            raise LiveCameraError(
                f"camera {self.camera}: writing {path} failed: {exc.strerror or exc}."
            ) from None
        stats = self._stats
        self._stats = replace(stats, written=stats.written + 1, bytes=stats.bytes + len(data))
        if self.on_complete is not None:
            self.on_complete(
                FrameCompletion(self.camera, name, path, len(data), closed_monotonic, closed_wall)
            )
        self._trim_ring(path)

    def _trim_ring(self, newest: Path) -> None:
        if not self.settings.ring:
            return
        self._ring.append(newest)
        while len(self._ring) > self.settings.ring:
            # Already gone is fine: a cleanup tool or a test may have removed it.
            self._ring.popleft().unlink(missing_ok=True)


def run_live(
    folders: Mapping[str, Path],
    pools: Mapping[str, Sequence[bytes]],
    settings: LiveSettings,
    stop: threading.Event,
    *,
    duration: float = 0.0,
    on_complete: CompletionCallback | None = None,
    on_tick: Callable[[Sequence[CameraStats]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LiveSummary:
    """Run one camera thread per folder until `stop` is set, `duration` s pass or counts are done.

    Folders are created if missing. `pools[camera]` are the JPEG bytes that camera cycles
    through. `on_complete` is called from the camera threads each time a frame is closed;
    `on_tick` once a second from the calling thread with every camera's stats. Sets `stop`
    itself when it ends, and raises LiveCameraError if a camera could not write.
    """
    for camera, folder in folders.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LiveCameraError(
                f"camera {camera}: cannot create {folder}: {exc.strerror or exc}."
            ) from None
    cameras = [
        LiveCamera(
            camera, folder, pools[camera], settings, stop, on_complete=on_complete, clock=clock
        )
        for camera, folder in folders.items()
    ]
    errors: list[BaseException] = []
    began = clock()
    t0 = began + _START_LEAD_S

    def body(camera: LiveCamera) -> None:
        try:
            camera.run(t0)
        except BaseException as exc:
            errors.append(exc)
            stop.set()  # one failing camera ends the run; the operator must see it

    threads = [
        threading.Thread(target=body, args=(camera,), name=f"live-{camera.camera}", daemon=True)
        for camera in cameras
    ]
    for thread in threads:
        thread.start()
    deadline = began + duration if duration > 0 else None
    next_tick = began + _TICK_S
    try:
        while alive := [thread for thread in threads if thread.is_alive()]:
            now = clock()
            if deadline is not None and now >= deadline:
                stop.set()
            if on_tick is not None and now >= next_tick:
                on_tick([camera.stats() for camera in cameras])
                next_tick += _TICK_S
            # Short waits, so the deadline, a stop and cameras finishing are noticed promptly.
            alive[0].join(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    stats = tuple(replace(camera.stats(), behind=0) for camera in cameras)
    return LiveSummary(stats, clock() - began)


class CompletionLog:
    """Appends `name<TAB>time.time()` per closed frame to a file; usable as `on_complete`.

    Each line is flushed at once, so a benchmark in another process can follow the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed in close())

    def __call__(self, completion: FrameCompletion) -> None:
        with self._lock:
            self._file.write(f"{completion.name}\t{completion.closed_wall:.6f}\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> CompletionLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
