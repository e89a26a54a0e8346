"""`prepare_landing_root`: a receiver's --out-dir (or a camera's dest_path) is made if need be
and must take a file, checked on this machine's real filesystem, leaving nothing behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from camxfer.recv.landing import prepare_landing_root


def test_a_missing_folder_is_made_with_its_parents_and_left_empty(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    prepare_landing_root(folder)
    assert folder.is_dir()
    assert list(folder.iterdir()) == []


def test_an_existing_folder_with_files_is_left_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "frame.jpg").write_bytes(b"x")
    prepare_landing_root(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["frame.jpg"]


def test_a_file_in_its_place_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"")
    with pytest.raises(OSError) as caught:
        prepare_landing_root(tmp_path / "x")
    assert caught.value.errno == errno.ENOTDIR
