"""The benchmark's data sets: frames numbered from where asked, each file what its digest
says; the trigger measure's ring puts its small older frames before them, dated alike."""

from __future__ import annotations

from pathlib import Path

import xxhash

from bench import trigger
from bench.dataset import frame_file_name, make_dataset


def test_a_data_set_numbered_from_first(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "ring", 3, 1000, 2000, camera="camera02", first=1780)
    assert list(data.names) == [frame_file_name(n, "camera02") for n in (1780, 1781, 1782)]
    for name, size, digest in zip(data.names, data.sizes, data.digests, strict=True):
        body = (tmp_path / "ring" / name).read_bytes()
        assert len(body) == size and xxhash.xxh3_128_digest(body) == digest


def test_the_trigger_ring_holds_older_frames_before_the_backlog(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    data = make_dataset(ring, 2, 1000, 1000, first=5)
    trigger._write_older_frames(ring, "camera01", 5)
    names = sorted(p.name for p in ring.iterdir())
    assert names == [frame_file_name(n) for n in range(7)]
    backlog_mtime = (ring / data.names[0]).stat().st_mtime
    for number in range(5):
        older = ring / frame_file_name(number)
        assert older.stat().st_size == trigger.OLDER_BYTES
        assert older.stat().st_mtime == backlog_mtime
