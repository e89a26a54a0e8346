"""Test frames: real JPEGs of a chosen file size, and batches of them written into camera folders.

Responsible for: the image model (a smooth random scene plus noise, so JPEG quality changes the
file size), planning the width, height and noise that bring a size range within JPEG's reach,
picking the quality of each frame so its size lands in the range, and writing numbered frames
atomically (temporary dot-name, fsync, rename).
Not responsible for: deciding which folders to write to (`camxfer.cli.generate` reads the
config) or simulating a camera writing in real time (`camxfer.tools.live_camera`).

Speed: encoding is cheap (libjpeg-turbo, a few ms per 2-megapixel frame); making noise and
searching the quality are not. So each camera gets a few base images made once, every frame is
a base shifted by a random offset with a small patch of fresh noise, and the quality is
predicted from the base's measured size-per-quality curve. Most frames then need one encode.
Every choice is a pure function of (seed, camera, frame number), so the same seed gives the same
bytes whatever the number of worker processes or the --start/--count split.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image
from tqdm import tqdm

from camxfer.errors import CamxferError, UsageError
from camxfer.frames import frame_name

MIB = 1 << 20
# The size range is centred on this quality when planning, so both ends of the range sit where
# one quality step changes the size by a few percent (above ~95 each step jumps by 10-20 %).
REFERENCE_QUALITY = 85
BASES_PER_CAMERA = 3
MAX_NOISE = 64.0  # grey levels (std dev); beyond this, clipping at 0 and 255 flattens the noise
MIN_SIDE = 16
# Bounds memory: every worker process keeps 3 base images per camera at 3 bytes a pixel, so
# 6 cameras at this size take about 0.9 GB per process (at 1600x1200, about 100 MB).
MAX_PIXELS = 16_000_000
MAX_PLAN_ATTEMPTS = 8
# A COM segment carries at most 65533 payload bytes after its 2-byte marker and 2-byte length.
_COM_OVERHEAD = 4
_COM_MAX_PAYLOAD = 65533
_PADDING = b"camxfer test frame padding "


class SizeRangeError(UsageError):
    """The requested file-size range cannot be produced (too narrow, too big, too small)."""


class FrameWriteError(CamxferError):
    """A frame could not be written into its camera folder."""


@dataclass(frozen=True)
class SizeRange:
    """Acceptable JPEG file sizes in bytes, both ends included."""

    low: int
    high: int

    @classmethod
    def from_mib(cls, min_mb: float, max_mb: float) -> SizeRange:
        if not 0 < min_mb < math.inf:
            raise UsageError(f"--min-mb must be a number more than 0, got {min_mb:g}.")
        if max_mb == math.inf:
            raise UsageError("--max-mb must be a finite number.")
        if not max_mb > min_mb:
            raise UsageError(f"--max-mb ({max_mb:g}) must be larger than --min-mb ({min_mb:g}).")
        sizes = cls(math.ceil(min_mb * MIB), math.floor(max_mb * MIB))
        # Padding needs a few bytes of room; a narrower range is a typo, not a wish.
        if sizes.high - sizes.low < 64:
            raise SizeRangeError(
                f"--min-mb {min_mb:g} and --max-mb {max_mb:g} are less than 64 bytes apart; "
                "widen the range."
            )
        return sizes

    def __contains__(self, size: object) -> bool:
        return isinstance(size, int) and self.low <= size <= self.high

    def clamp(self, size: int) -> int:
        return min(max(size, self.low), self.high)

    def describe(self) -> str:
        return f"{self.low / MIB:.3f}..{self.high / MIB:.3f} MiB"


@dataclass(frozen=True)
class ImagePlan:
    """The picture every frame of a run is made from: its size and how noisy it is."""

    width: int
    height: int
    noise: float  # std dev in grey levels of the noise added to the smooth scene
    seed: int


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """Encode with fixed settings, so the same pixels and quality always give the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling="4:2:0", optimize=False)
    return buffer.getvalue()


def pad_jpeg(data: bytes, size: int) -> bytes:
    """Grow a JPEG to exactly `size` bytes with comment (COM) segments that decoders skip.

    Used only when a frame falls between two quality steps, both outside the range.
    """
    missing = size - len(data)
    if missing == 0:
        return data
    if missing < _COM_OVERHEAD:
        raise ValueError(f"cannot pad by {missing} bytes; a segment needs {_COM_OVERHEAD}")
    segments = []
    while missing:
        payload = min(missing - _COM_OVERHEAD, _COM_MAX_PAYLOAD)
        # Leave enough for one more whole segment rather than a 1-3 byte remainder.
        if 0 < missing - _COM_OVERHEAD - payload < _COM_OVERHEAD:
            payload -= _COM_OVERHEAD
        body = (_PADDING * (payload // len(_PADDING) + 1))[:payload]
        segments.append(b"\xff\xfe" + (payload + 2).to_bytes(2, "big") + body)
        missing -= payload + _COM_OVERHEAD
    # JFIF wants its APP0 segment right after SOI, so the comments go after it.
    insert_at = 2
    if data[2:4] == b"\xff\xe0":
        insert_at = 4 + int.from_bytes(data[4:6], "big")
    return data[:insert_at] + b"".join(segments) + data[insert_at:]


def _rng(seed: int, *words: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def _camera_key(camera: str) -> int:
    # A stable number per camera name; Python's hash() changes between runs.
    return zlib.crc32(camera.encode())


def _scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth colour field: broad gradients plus blotches, int16 to leave room for noise."""
    broad = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    blotches = rng.integers(
        0, 256, size=(max(height // 48, 2), max(width // 48, 2), 3), dtype=np.uint8
    )
    broad_img = Image.fromarray(broad).resize((width, height), Image.Resampling.BICUBIC)
    blotch_img = Image.fromarray(blotches).resize((width, height), Image.Resampling.BILINEAR)
    scene = np.asarray(broad_img, dtype=np.int16) * 3
    scene += np.asarray(blotch_img, dtype=np.int16)
    scene //= 4
    return scene


def _noisy(scene: np.ndarray, unit_noise: np.ndarray, noise: float) -> np.ndarray:
    pixels = unit_noise * np.float32(noise)
    pixels += scene
    np.clip(pixels, 0, 255, out=pixels)
    return pixels.astype(np.uint8)


def _jpeg_size(pixels: np.ndarray, quality: int) -> int:
    return len(encode_jpeg(Image.fromarray(pixels), quality))


def plan_image(width: int, height: int, sizes: SizeRange, seed: int) -> ImagePlan:
    """Find the noise level (and, if it must be, a new width x height) for the size range.

    The noise is chosen so a frame at REFERENCE_QUALITY is about the middle of the range. If no
    noise level can reach the range at any quality, the picture is scaled (file size grows with
    the pixel count) and the search repeats. Raises SizeRangeError when no size up to
    MAX_PIXELS, or down to MIN_SIDE pixels a side, reaches the range.
    """
    middle = (sizes.low + sizes.high) / 2
    for _attempt in range(MAX_PLAN_ATTEMPTS):
        rng = _rng(seed, 0)
        scene = _scene(rng, width, height)
        unit_noise = rng.standard_normal(size=scene.shape, dtype=np.float32)

        def size_at(noise: float, quality: int, scene=scene, unit_noise=unit_noise) -> int:
            return _jpeg_size(_noisy(scene, unit_noise, noise), quality)

        loudest = size_at(MAX_NOISE, REFERENCE_QUALITY)
        quietest = size_at(0.0, REFERENCE_QUALITY)
        if loudest < middle:
            if size_at(MAX_NOISE, 100) >= sizes.low + (sizes.high - sizes.low) // 4:
                return ImagePlan(width, height, MAX_NOISE, seed)
            factor = math.sqrt(middle / loudest) * 1.1
        elif quietest > middle:
            if size_at(0.0, 1) <= sizes.high - (sizes.high - sizes.low) // 4:
                return ImagePlan(width, height, 0.0, seed)
            factor = math.sqrt(middle / quietest) / 1.1
        else:
            low, high = 0.0, MAX_NOISE
            for _step in range(9):  # 64 / 2**9: an eighth of a grey level is plenty
                mid = (low + high) / 2
                if size_at(mid, REFERENCE_QUALITY) < middle:
                    low = mid
                else:
                    high = mid
            return ImagePlan(width, height, round((low + high) / 2, 3), seed)
        width, height = round(width * factor), round(height * factor)
        if width * height > MAX_PIXELS or min(width, height) < MIN_SIDE:
            break
    raise SizeRangeError(
        f"cannot make JPEGs of {sizes.describe()}: it would take a picture of about "
        f"{width}x{height} pixels, and pictures must have at least {MIN_SIDE} pixels a side "
        f"and at most {MAX_PIXELS // 1_000_000} megapixels; choose other --min-mb/--max-mb."
    )


class FrameMaker:
    """Makes one camera's frames: JPEG bytes for a frame number, sized within the range.

    Safe to call from several threads at once; every result depends only on the plan, the
    camera and the frame number.
    """

    def __init__(self, camera: str, plan: ImagePlan, sizes: SizeRange) -> None:
        self.camera = camera
        self.plan = plan
        self.sizes = sizes
        self._key = _camera_key(camera)
        self._bases: list[np.ndarray | None] = [None] * BASES_PER_CAMERA
        self._base_lock = threading.Lock()
        # Size of each base image per quality. Filled lazily; racing threads compute the same
        # value, so no lock is needed.
        self._curves: list[dict[int, int]] = [{} for _ in range(BASES_PER_CAMERA)]

    def make(self, number: int) -> bytes:
        """The JPEG bytes of frame `number`: a random size within the range, and valid."""
        rng = _rng(self.plan.seed, 1, self._key, number)
        which = int(rng.integers(BASES_PER_CAMERA))
        target = int(rng.integers(self.sizes.low, self.sizes.high + 1))
        image = Image.fromarray(self._vary(self._base(which), rng))
        return self._fit(image, target, self._predict_quality(which, target))

    def _base(self, which: int) -> np.ndarray:
        with self._base_lock:
            base = self._bases[which]
            if base is None:
                plan = self.plan
                rng = _rng(plan.seed, 2, self._key, which)
                scene = _scene(rng, plan.width, plan.height)
                unit_noise = rng.standard_normal(size=scene.shape, dtype=np.float32)
                base = self._bases[which] = _noisy(scene, unit_noise, plan.noise)
            return base

    def _vary(self, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The base shifted by a random offset with a patch of fresh low-bit noise.

        A shift keeps the picture's statistics, so its JPEG size stays close to the base's at
        the same quality, yet every frame's bytes differ.
        """
        height, width, _ = base.shape
        dy, dx = int(rng.integers(height)), int(rng.integers(width))
        pixels = np.roll(base, (dy, dx), axis=(0, 1))
        ph, pw = max(height // 8, 1), max(width // 8, 1)
        y, x = int(rng.integers(height - ph + 1)), int(rng.integers(width - pw + 1))
        pixels[y : y + ph, x : x + pw] ^= rng.integers(0, 8, size=(ph, pw, 3), dtype=np.uint8)
        return pixels

    def _base_size(self, which: int, quality: int) -> int:
        curve = self._curves[which]
        size = curve.get(quality)
        if size is None:
            size = curve[quality] = _jpeg_size(self._base(which), quality)
        return size

    def _predict_quality(self, which: int, target: int) -> int:
        """The quality whose base-image size is nearest the target (sizes rise with quality)."""
        low, high = 1, 100
        while low < high:  # smallest quality reaching the target
            mid = (low + high) // 2
            if self._base_size(which, mid) >= target:
                high = mid
            else:
                low = mid + 1
        if low > 1:
            below = self._base_size(which, low - 1)
            if abs(below - target) < abs(self._base_size(which, low) - target):
                return low - 1
        return low

    def _fit(self, image: Image.Image, target: int, quality: int) -> bytes:
        """Encode at the predicted quality; if that misses the range, search from there."""
        sizes = self.sizes
        encoded: dict[int, bytes] = {}

        def encode(q: int) -> bytes:
            if q not in encoded:
                encoded[q] = encode_jpeg(image, q)
            return encoded[q]

        data = encode(quality)
        if len(data) in sizes:
            return data
        if len(data) > sizes.high:
            # Largest quality still small enough; searching only below the prediction.
            low, high = 1, quality - 1
            if low > high or len(encode(1)) > sizes.high:
                raise SizeRangeError(
                    f"camera {self.camera}: even quality 1 gives {len(encode(1))} bytes, "
                    f"more than {sizes.describe()}; lower --width/--height or raise --max-mb."
                )
            while low < high:
                mid = (low + high + 1) // 2
                if len(encode(mid)) <= sizes.high:
                    low = mid
                else:
                    high = mid - 1
            data = encode(low)
        else:
            # Smallest quality big enough; if it overshoots, its neighbour below gets padded.
            low, high = quality + 1, 100
            if low > high or len(encode(100)) < sizes.low:
                data = encode(100)
            else:
                while low < high:
                    mid = (low + high) // 2
                    if len(encode(mid)) >= sizes.low:
                        high = mid
                    else:
                        low = mid + 1
                data = encode(low)
                if len(data) > sizes.high:
                    data = encode(low - 1)
        if len(data) in sizes:
            return data
        # Between two quality steps, both outside the range: pad the smaller one up to size.
        return pad_jpeg(data, sizes.clamp(max(target, len(data) + _COM_OVERHEAD)))


def make_pool(maker: FrameMaker, first: int, size: int) -> list[bytes]:
    """`size` frames' bytes for frames `first`, `first + 1`, ... (live mode cycles them)."""
    return [maker.make(first + index) for index in range(size)]


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be written in it, or raise UsageError."""
    probe = folder / f".camxfer-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot write frames into {folder}: {reason}.") from None


def write_atomically(folder: Path, name: str, data: bytes) -> None:
    """Write `folder/name` so it only ever appears whole: temp dot-name, fsync, rename."""
    temp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temp, folder / name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    # The renames live in the folder's own blocks; without this a crash can undo them.
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class BatchResult:
    frames: int
    bytes: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# Frames per task handed to a worker process: small enough for a smooth progress bar and a
# quick stop on Ctrl-C, large enough that task overhead stays below 1 %.
_CHUNK = 8

# In a worker process: that process's FrameMakers, so it makes each camera's bases once.
_MakerKey = tuple[str, ImagePlan, SizeRange]
_worker_makers: dict[_MakerKey, FrameMaker] = {}


def _maker(
    makers: dict[_MakerKey, FrameMaker], camera: str, plan: ImagePlan, sizes: SizeRange
) -> FrameMaker:
    key = (camera, plan, sizes)
    if key not in makers:
        makers[key] = FrameMaker(camera, plan, sizes)
    return makers[key]


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group; only the parent should act on it (by not
    # starting new chunks), so a worker finishes its chunk instead of dying mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_chunk(
    camera: str, folder: Path, plan: ImagePlan, sizes: SizeRange, first: int, count: int
) -> tuple[int, int]:
    """Make and write frames `first .. first+count-1` of one camera; returns (frames, bytes)."""
    maker = _maker(_worker_makers, camera, plan, sizes)
    written = 0
    for number in range(first, first + count):
        data = maker.make(number)
        name = frame_name(camera, number)
        try:
            write_atomically(folder, name, data)
        except OSError as exc:
            raise FrameWriteError(
                f"writing {folder / name} failed: {exc.strerror or exc}."
            ) from None
        written += len(data)
    return count, written


def _make_chunk(
    camera: str, plan: ImagePlan, sizes: SizeRange, first: int, count: int
) -> list[bytes]:
    return make_pool(_maker(_worker_makers, camera, plan, sizes), first, count)


def _chunks(start: int, count: int) -> list[tuple[int, int]]:
    return [
        (first, min(_CHUNK, start + count - first)) for first in range(start, start + count, _CHUNK)
    ]


def _process_pool(workers: int | None) -> ProcessPoolExecutor:
    # Processes, not threads: Pillow's JPEG encoder holds the GIL (measured: two threads encode
    # no faster than one). "spawn" because forking a process that runs threads is unsafe.
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
    )


def generate_batch(
    folders: Mapping[str, Path],
    plan: ImagePlan,
    sizes: SizeRange,
    *,
    start: int,
    count: int,
    workers: int | None = None,
    progress: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BatchResult:
    """Write frames `start .. start+count-1` of every camera into its folder.

    Frames are made and written by `workers` processes (default: one per CPU). `progress` is
    the stream for a progress bar, or None for none. Raises FrameWriteError if a frame cannot
    be written; frames already written stay, and no temporary file is left behind.
    """
    began = clock()
    total = count * len(folders)
    frames = written = 0
    bar = tqdm(
        total=total,
        unit="frame",
        file=progress,
        disable=progress is None,
        delay=1.0,  # only runs longer than a second get a bar
        dynamic_ncols=True,
    )
    with bar, _process_pool(workers) as pool:
        # Chunk n of every camera before chunk n+1, so folders fill in step, as from cameras.
        futures = [
            pool.submit(_write_chunk, camera, folder, plan, sizes, first, length)
            for first, length in _chunks(start, count)
            for camera, folder in folders.items()
        ]
        try:
            for future in as_completed(futures):
                chunk_frames, chunk_bytes = future.result()
                frames += chunk_frames
                written += chunk_bytes
                bar.update(chunk_frames)
        except BrokenProcessPool:
            raise FrameWriteError(
                "a frame-making process died (out of memory?); frames written so far are whole."
            ) from None
        finally:
            # On an error or Ctrl-C, chunks not yet started are dropped; running ones finish
            # (or remove their temporary file) before the pool's shutdown returns.
            for future in futures:
                future.cancel()
    for folder in set(folders.values()):
        _fsync_folder(folder)
    return BatchResult(frames, written, clock() - began)


def make_pools(
    cameras: Sequence[str],
    plan: ImagePlan,
    sizes: SizeRange,
    *,
    first: int,
    size: int,
    workers: int | None = None,
) -> dict[str, list[bytes]]:
    """Each camera's frames `first .. first+size-1` as bytes, made by worker processes."""
    with _process_pool(workers) as pool:
        futures = {
            camera: [
                pool.submit(_make_chunk, camera, plan, sizes, chunk_first, length)
                for chunk_first, length in _chunks(first, size)
            ]
            for camera in cameras
        }
        return {
            camera: [data for future in chunks for data in future.result()]
            for camera, chunks in futures.items()
        }
