"""`BatchFolders`: a group commit's folders, opened once, lent to the landings, fsynced once,
and closed when the batch is acknowledged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from camxfer.recv.landing import BatchFolders, FileLanding, LandingRoot
from tests.conftest import checksum, temps_under


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def land(
    root: LandingRoot, folders: BatchFolders, where: list[str], name: str, data: bytes
) -> FileLanding:
    landing = FileLanding(
        root, where, name, len(data), checksum(data), folder_fd=folders.open(where)
    )
    landing.write(memoryview(data))
    return landing


def test_each_folder_is_opened_once_per_batch_and_closed_with_it(tmp_path: Path) -> None:
    root = LandingRoot(tmp_path / "out")
    before = open_fds()
    folders = BatchFolders(root)
    event = folders.open(["ev"])
    assert folders.open(["ev"]) == event
    nested = folders.open(["ev", "cam"])
    assert nested != event
    assert os.path.samestat(os.fstat(nested), os.stat(tmp_path / "out" / "ev" / "cam"))
    folders.close()
    assert open_fds() == before
    root.close()


def test_landings_borrow_the_folder_and_leave_it_open(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = LandingRoot(out)
    folders = BatchFolders(root)
    frames = {f"f{i}.jpg": os.urandom(40_000 + i) for i in range(3)}
    landings = [land(root, folders, ["ev"], name, data) for name, data in frames.items()]
    refused = land(root, folders, ["ev"], "refused.jpg", b"x")
    refused.abort()
    for landing in landings:
        assert landing.commit(sync_folder=False).status == "landed"
    # Still open, on the same folder: the landings did not close it.
    assert os.path.samestat(os.fstat(folders.open(["ev"])), os.stat(out / "ev"))
    assert folders.sync([("ev",), ("ev",)]) == {("ev",): True}
    folders.close()
    root.close()
    assert {p.name: p.read_bytes() for p in (out / "ev").iterdir()} == frames
    assert temps_under(out) == []


def test_a_folder_removed_between_batches_is_made_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = LandingRoot(out)
    folders = BatchFolders(root)
    land(root, folders, ["ev"], "a.jpg", b"first").commit(sync_folder=False)
    folders.close()
    shutil.rmtree(out / "ev")  # a clear between two batches
    land(root, folders, ["ev"], "b.jpg", b"second").commit(sync_folder=False)
    assert folders.sync([("ev",)]) == {("ev",): True}
    folders.close()
    root.close()
    assert (out / "ev" / "b.jpg").read_bytes() == b"second"
    assert not (out / "ev" / "a.jpg").exists()
