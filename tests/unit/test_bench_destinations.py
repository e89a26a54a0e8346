"""The benchmark's per-repetition destinations (`bench.destinations`): each repetition lands
into an empty folder of its own, the previous ones are gone, and on ext4 their parent carries
the top-directory flag that lets the filesystem place each new folder away from the inodes
the last repetition freed."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
from pathlib import Path

import pytest

from bench.destinations import FS_IOC_GETFLAGS, FS_TOPDIR_FL, fresh_dest, mark_top_dir


def filesystem(path: Path) -> str:
    return subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    finally:
        os.close(fd)


def test_each_repetition_gets_an_empty_folder_of_its_own(tmp_path: Path) -> None:
    first = fresh_dest(tmp_path, "camxfer-0")
    (first / "bench").mkdir()
    (first / "bench" / "frame.jpg").write_bytes(b"x" * 1000)
    (tmp_path / "dest" / "stray-file").write_bytes(b"left by a killed run")
    second = fresh_dest(tmp_path, "camxfer-0")
    assert second != first and second.parent == first.parent
    assert list(second.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == [second.name]


def test_the_parent_is_marked_top_dir_on_ext4(tmp_path: Path) -> None:
    if filesystem(tmp_path) != "ext2/ext3":  # what stat calls ext4 too
        pytest.skip(f"tmp_path is on {filesystem(tmp_path)}, not ext4")
    fresh_dest(tmp_path, "cp-1")
    assert flags(tmp_path / "dest") & FS_TOPDIR_FL
    assert not flags(tmp_path) & FS_TOPDIR_FL


def test_a_filesystem_without_the_flag_is_no_error() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or filesystem(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    folder = shm / f"camxfer-test-topdir-{os.getpid()}"
    folder.mkdir()
    try:
        assert mark_top_dir(folder) is False
    finally:
        folder.rmdir()
