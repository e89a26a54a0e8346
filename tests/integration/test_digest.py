"""`camxfer digest`: SHA-256 of the frames in a folder, how trigger.yml proves frames are whole."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camxfer", "digest", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )


def make(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True)
    files = {"frame_c_000000001.jpg": os.urandom(3000), "frame_c_000000002.jpg": b""}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / ".frame_c_000000003.jpg.tmp").write_bytes(b"partial")  # a receiver's temp file
    (folder / "sub").mkdir()
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def test_every_frame_as_json_without_hidden_files_or_folders(tmp_path: Path) -> None:
    expected = make(tmp_path / "frames")
    result = digest(str(tmp_path / "frames"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_sha256sum_lines_by_default(tmp_path: Path) -> None:
    expected = make(tmp_path / "frames")
    result = digest(str(tmp_path / "frames"))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"{sha}  {name}" for name, sha in expected.items()]


def test_named_frames_missing_ones_null_and_exit_1(tmp_path: Path) -> None:
    expected = make(tmp_path / "frames")
    names = ["frame_c_000000002.jpg", "frame_c_000000009.jpg", "sub"]
    result = digest(str(tmp_path / "frames"), "--json", "--names", *names)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "frame_c_000000002.jpg": expected["frame_c_000000002.jpg"],
        "frame_c_000000009.jpg": None,
        "sub": None,
    }


def test_missing_folder_is_an_error_unless_missing_ok(tmp_path: Path) -> None:
    result = digest(str(tmp_path / "nope"), "--json")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = digest(str(tmp_path / "nope"), "--json", "--missing-ok")
    assert result.returncode == 0 and json.loads(result.stdout) == {}
    result = digest(str(tmp_path / "nope"), "--json", "--missing-ok", "--names", "a.jpg")
    assert result.returncode == 1 and json.loads(result.stdout) == {"a.jpg": None}


def test_names_with_separators_are_refused(tmp_path: Path) -> None:
    make(tmp_path / "frames")
    result = digest(str(tmp_path / "frames"), "--names", "../etc/passwd")
    assert result.returncode == 2 and "not a plain file name" in result.stderr
