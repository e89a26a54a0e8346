"""`sync_sealed` + `commit(data_synced=True)`: the group-commit path of `FileLanding`, on real
folders, including a batch that spans two filesystems (a tmpfs mounted below the root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from camxfer.recv.landing import (
    SYNCFS_SLACK_BYTES,
    BatchFolders,
    ChecksumMismatch,
    FileLanding,
    LandingRoot,
    dirty_bytes,
    start_writeback,
    sync_sealed,
    syncfs_pays_off,
)
from tests.conftest import checksum, temps_under


def sealed(
    root: LandingRoot, folders: list[str], name: str, data: bytes, folder_fd: int | None = None
) -> FileLanding:
    landing = FileLanding(root, folders, name, len(data), checksum(data), folder_fd=folder_fd)
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
    folders = BatchFolders(root)
    try:
        batch = [
            sealed(root, [folder], name, data, folders.open([folder]))
            for (folder, name), data in files.items()
        ]
        assert len({os.fstat(landing.dir_fd).st_dev for landing in batch}) == 2
        assert sync_sealed(batch) is True
        for landing in batch:
            assert landing.commit(data_synced=True, sync_folder=False).status == "landed"
        assert folders.sync([("disk",), ("mounted",)]) == {("disk",): True, ("mounted",): True}
    finally:
        folders.close()
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
        landing = FileLanding(root, [], "bad.jpg", 3, checksum(b"abc"))
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


def test_syncfs_is_chosen_only_when_little_else_is_dirty() -> None:
    """syncfs writes back the whole filesystem: with other writers' data dirty (a camera ring
    on the same disk) one fsync per file is the cheaper way, and without a count, syncfs."""
    batch = 8 * (3 << 19)
    assert syncfs_pays_off(batch, 0)
    assert syncfs_pays_off(batch, batch + SYNCFS_SLACK_BYTES)
    assert not syncfs_pays_off(batch, batch + SYNCFS_SLACK_BYTES + 1)
    assert not syncfs_pays_off(batch, 800 << 20)
    assert syncfs_pays_off(batch, None)


def test_dirty_bytes_reads_dirty_and_writeback(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:       24000000 kB\nDirty:              1000 kB\n"
        "Writeback:           24 kB\nWritebackTmp:      9999 kB\n"
    )
    assert dirty_bytes(str(meminfo)) == 1024 * 1024
    meminfo.write_text("Dirty: lots\n")
    assert dirty_bytes(str(meminfo)) is None
    assert dirty_bytes(str(tmp_path / "absent")) is None
    assert isinstance(dirty_bytes(), int)  # this machine's own /proc/meminfo


def test_other_writers_dirty_data_is_seen(tmp_path: Path) -> None:
    """The count the choice rests on moves with another writer's unsynced data."""
    big = tmp_path / "ring-frame"
    with big.open("wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    during = dirty_bytes()
    os.sync()
    assert during is not None
    # The kernel may already have started writing it; Writeback still counts it.
    assert during >= 32 << 20, f"64 MiB written but only {during >> 20} MiB dirty"
