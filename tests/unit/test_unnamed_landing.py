"""Landing through an unnamed file (O_TMPFILE) and, where a filesystem has none, a named
temporary: on this machine's real filesystem, what a reader of the folder can see at each step,
and that every way a landing ends leaves exactly the right entries and no open file behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from camxfer.recv.landing import TEMP_PREFIX, ExistsDifferent, FileLanding, LandingRoot
from tests.conftest import checksum, unnamed_files


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def open_here(folder: Path) -> list[str]:
    """Unnamed files under `folder` this process holds open."""
    return [link for _pid, link in unnamed_files(folder, [os.getpid()])]


@pytest.fixture(params=["unnamed", "named"])
def root(request, tmp_path: Path) -> Iterator[LandingRoot]:
    landing_root = LandingRoot(tmp_path / "out", overwrite=False)
    if request.param == "named":
        landing_root.unnamed_possible = False  # as on a filesystem without O_TMPFILE
    assert landing_root.unnamed_possible == (request.param == "unnamed")
    yield landing_root
    landing_root.close()


def start(root: LandingRoot, name: str, data: bytes) -> FileLanding:
    landing = FileLanding(root, ["ev"], name, len(data), checksum(data))
    landing.write(memoryview(data[: len(data) // 2]))
    return landing


def land(root: LandingRoot, name: str, data: bytes) -> str:
    landing = start(root, name, data)
    landing.write(memoryview(data)[len(data) // 2 :])
    return landing.commit().status


def test_a_file_being_written_has_no_name_until_it_lands(root: LandingRoot) -> None:
    folder = root.root / "ev"
    data = b"frame" * 5000
    landing = start(root, "f.jpg", data)
    if root.unnamed_possible:
        assert entries(folder) == []  # nothing at all for a reader to see
        assert len(open_here(folder)) == 1
    else:
        [temp] = entries(folder)
        assert temp.startswith(TEMP_PREFIX)
    landing.write(memoryview(data[len(data) // 2 :]))
    assert landing.commit().status == "landed"
    assert entries(folder) == ["f.jpg"]
    assert (folder / "f.jpg").read_bytes() == data
    assert (folder / "f.jpg").stat().st_nlink == 1
    assert open_here(folder) == []


def test_an_aborted_file_leaves_nothing_open_or_named(root: LandingRoot) -> None:
    landing = start(root, "f.jpg", b"abcdef" * 1000)
    landing.abort()
    assert entries(root.root / "ev") == []
    assert open_here(root.root) == []


def test_identical_file_is_a_duplicate_and_a_different_one_is_refused(root: LandingRoot) -> None:
    folder = root.root / "ev"
    assert land(root, "f.jpg", b"one" * 100) == "landed"
    assert land(root, "f.jpg", b"one" * 100) == "duplicate"
    with pytest.raises(ExistsDifferent):
        land(root, "f.jpg", b"two" * 100)
    assert entries(folder) == ["f.jpg"]
    assert (folder / "f.jpg").read_bytes() == b"one" * 100
    assert open_here(folder) == []


def test_overwrite_replaces_a_different_file(root: LandingRoot) -> None:
    root.overwrite = True
    folder = root.root / "ev"
    folder.mkdir()
    (folder / "f.jpg").write_bytes(b"old")
    assert land(root, "f.jpg", b"new!" * 100) == "landed"
    assert entries(folder) == ["f.jpg"]
    assert (folder / "f.jpg").read_bytes() == b"new!" * 100
    assert open_here(folder) == []
