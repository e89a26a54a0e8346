"""`sync_sealed` + `commit(data_synced=True)`: the group-commit path of `FileLanding`, on real
folders, including a batch that spans two filesystems (a tmpfs mounted below the root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from camxfer.protocol import new_hasher
from camxfer.recv.landing import (
    ChecksumMismatch,
    FileLanding,
    LandingRoot,
    start_writeback,
    sync_sealed,
)
from tests.conftest import temps_under


def sealed(root: LandingRoot, folders: list[str], name: str, data: bytes) -> FileLanding:
    hasher = new_hasher()
    hasher.update(data)
    landing = FileLanding(root, folders, name, len(data), hasher.digest())
    landing.write(memoryview(data))
    landing.seal()
    return landing


@pytest.fixture
def root_with_mount(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "out"
    (out / "mounted").mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", out / "mounted"], check=True)
    try:
        yield out
    finally:
        subprocess.run(["umount", out / "mounted"], check=True)


def test_batch_across_two_filesystems_lands_whole(root_with_mount: Path) -> None:
    out = root_with_mount
    root = LandingRoot(out)
    files = {("disk", f"f{i}.jpg"): os.urandom(30_000 + i) for i in range(3)}
    files |= {("mounted", f"g{i}.jpg"): os.urandom(20_000 + i) for i in range(3)}
    try:
        batch = [sealed(root, [folder], name, data) for (folder, name), data in files.items()]
        assert len({landing.device for landing in batch}) == 2
        assert sync_sealed(batch) is True
        folder_fds: list[int] = []
        for landing in batch:
            assert landing.commit(folder_fds, data_synced=True).status == "landed"
        for fd in folder_fds:
            os.fsync(fd)
            os.close(fd)
    finally:
        root.close()
    for (folder, name), data in files.items():
        assert (out / folder / name).read_bytes() == data
    assert temps_under(out) == []


def test_single_file_is_left_to_its_own_fsync(tmp_path: Path) -> None:
    root = LandingRoot(tmp_path / "out")
    try:
        one = sealed(root, [], "only.jpg", b"bytes")
        assert sync_sealed([one]) is False
        assert one.commit().status == "landed"
    finally:
        root.close()
    assert (tmp_path / "out" / "only.jpg").read_bytes() == b"bytes"


def test_seal_refuses_a_corrupt_body_and_removes_its_temp(tmp_path: Path) -> None:
    root = LandingRoot(tmp_path / "out")
    try:
        hasher = new_hasher()
        hasher.update(b"abc")
        landing = FileLanding(root, [], "bad.jpg", 3, hasher.digest())
        landing.write(memoryview(b"abX"))
        with pytest.raises(ChecksumMismatch):
            landing.seal()
    finally:
        root.close()
    assert list((tmp_path / "out").iterdir()) == []


def test_early_writeback_is_only_a_hint(tmp_path: Path) -> None:
    """start_writeback never fails a landing: on a pipe (ESPIPE) it does nothing, and a sealed
    file's bytes are unchanged by it."""
    read_end, write_end = os.pipe()
    try:
        start_writeback(write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    root = LandingRoot(tmp_path / "out")
    data = os.urandom(3 << 20)
    landing = sealed(root, ["cam"], "f.jpg", data)
    landing.commit()
    assert (tmp_path / "out" / "cam" / "f.jpg").read_bytes() == data
    assert temps_under(tmp_path / "out") == []
