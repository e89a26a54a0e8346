"""Benchmark data sets: folders of numbered frames made of random bytes, and checking copies.

Responsible for: writing `count` frames named like a camera's (`frame_camera01_000000000.jpg`)
with random sizes in a range, remembering each file's XXH3-128 digest, and verifying that a
destination folder holds exactly those files with exactly those bytes.
Not responsible for: JPEG content. Random bytes are used on purpose: they are made at
~1 GB/s (real JPEGs take seconds to encode, `camxfer generate`), no tool here compresses or
parses them, and they cost every contender the same. Frames get an mtime a minute in the past,
so a `--once` sender treats them as the finished backlog they are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

from camxfer.manifest import MANIFEST_NAME

MIB = 1 << 20
KIB = 1 << 10
BACKDATE_S = 60.0


@dataclass(frozen=True)
class Dataset:
    root: Path
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    digests: tuple[bytes, ...]
    description: str  # e.g. "300 frames of 1.0-2.0 MiB"

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)


def frame_file_name(number: int, camera: str = "camera01") -> str:
    return f"frame_{camera}_{number:09d}.jpg"


def digest_of(path: Path) -> bytes:
    hasher = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as file:
        while chunk := file.read(4 * MIB):
            hasher.update(chunk)
    return hasher.digest()


def make_dataset(
    root: Path,
    count: int,
    min_bytes: int,
    max_bytes: int,
    *,
    seed: int = 1,
    camera: str = "camera01",
    description: str | None = None,
    first: int = 0,
) -> Dataset:
    """Write `count` random frames with sizes uniform in [min_bytes, max_bytes] into `root`,
    numbered from `first`."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.iterdir():
        stale.unlink()
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(min_bytes, max_bytes + 1, size=count)]
    names, digests = [], []
    backdated = os.path.getmtime(root) - BACKDATE_S
    for number, size in enumerate(sizes, start=first):
        name = frame_file_name(number, camera)
        data = rng.bytes(size)
        path = root / name
        path.write_bytes(data)
        os.utime(path, (backdated, backdated))
        names.append(name)
        digests.append(xxhash.xxh3_128_digest(data))
    os.sync()  # the data set's own writeback must not land inside a measurement
    if description is None:
        description = f"{count} frames of {_size_text(min_bytes)}-{_size_text(max_bytes)}"
    return Dataset(root, tuple(names), tuple(sizes), tuple(digests), description)


def _size_text(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / KIB:.0f} KiB"


def verify_copy(dataset: Dataset, landed: Path) -> str | None:
    """None when `landed` holds exactly the data set's files, byte for byte; else the reason."""
    if not landed.is_dir():
        return f"{landed} does not exist"
    found: set[str] = set()
    for folder, _dirs, files in os.walk(landed):
        for name in files:
            if name == MANIFEST_NAME:
                continue  # the run's manifest: camxfer verify checks it, not the data set
            found.add(os.path.relpath(os.path.join(folder, name), landed))
    expected = set(dataset.names)
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        return f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} extra (e.g. {extra[:2]})"
    for name, digest in zip(dataset.names, dataset.digests, strict=True):
        if digest_of(landed / name) != digest:
            return f"{name}: content differs from the source"
    return None
