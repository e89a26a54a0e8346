"""Is a frame finished? The completion decisions, on real files with real (set) mtimes.

Observations carry the wall-clock time they were made at, so the tests set file mtimes with
os.utime and pass explicit observation times: no sleeping, no timing assertions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from camxfer.send.completion import (
    Observation,
    WriteState,
    has_jpeg_eoi,
    is_complete,
    is_stable,
    observe,
)

STABLE_S = 0.005


def write(path: Path, data: bytes, mtime: float) -> Path:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def seen(path: Path, at: float) -> Observation:
    obs = observe(str(path), at)
    assert obs is not None
    return obs


def decide(
    path: Path,
    *,
    at: float,
    first: Observation | None = None,
    state: WriteState = WriteState.UNKNOWN,
    jpeg_eoi: bool = False,
    stable_s: float = STABLE_S,
    settle_s: float = 0.0,
) -> bool:
    return is_complete(
        path=str(path),
        write_state=state,
        first=first,
        latest=seen(path, at),
        stable_s=stable_s,
        jpeg_eoi=jpeg_eoi,
        settle_s=settle_s,
    )


def test_observe_missing_file_is_none(tmp_path: Path) -> None:
    assert observe(str(tmp_path / "nope.jpg"), time.time()) is None


def test_observe_does_not_follow_symlinks(tmp_path: Path) -> None:
    target = write(tmp_path / "target", b"x" * 100, 1000.0)
    (tmp_path / "link.jpg").symlink_to(target)
    obs = seen(tmp_path / "link.jpg", 2000.0)
    assert obs.size != 100  # the link itself, not the frame it points at


def test_old_mtime_is_stable_at_first_sight(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", b"data", 1000.0)
    assert is_stable(None, seen(path, 1000.0 + 2 * STABLE_S), STABLE_S)
    assert decide(path, at=1000.0 + 1)


def test_fresh_mtime_is_not_stable_at_first_sight(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", b"data", 1000.0)
    assert not is_stable(None, seen(path, 1000.001), STABLE_S)
    assert not decide(path, at=1000.001)


def test_two_equal_observations_far_enough_apart_are_stable(tmp_path: Path) -> None:
    # mtime in the future (clock skew on a network share): only the two looks can decide
    path = write(tmp_path / "a.jpg", b"data", 5000.0)
    first = seen(path, 1000.0)
    assert not is_stable(first, seen(path, 1000.0 + STABLE_S / 2), STABLE_S)
    assert is_stable(first, seen(path, 1000.0 + 2 * STABLE_S), STABLE_S)


@pytest.mark.parametrize("change", ["size", "mtime", "inode"])
def test_any_change_between_observations_is_not_stable(tmp_path: Path, change: str) -> None:
    path = write(tmp_path / "a.jpg", b"data", 5000.0)
    first = seen(path, 1000.0)
    if change == "size":
        write(path, b"data+more", 5000.0)
    elif change == "mtime":
        os.utime(path, (5000.5, 5000.5))
    else:
        write(tmp_path / "b.jpg", b"data", 5000.0).replace(path)  # renamed over: new inode
    assert not is_stable(first, seen(path, 1001.0), STABLE_S)


def test_writer_holding_the_file_open_is_never_complete(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", b"\xff\xd8partial\xff\xd9", 1000.0)
    assert not decide(path, at=2000.0, state=WriteState.WRITING)
    assert not decide(path, at=2000.0, state=WriteState.WRITING, jpeg_eoi=True)


def test_closed_by_the_writer_is_complete_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", b"data", 1000.0)
    assert decide(path, at=1000.0, state=WriteState.CLOSED)


def test_jpeg_eoi(tmp_path: Path) -> None:
    whole = write(tmp_path / "whole.jpg", b"\xff\xd8" + b"x" * 50 + b"\xff\xd9", 1000.0)
    cut = write(tmp_path / "cut.jpg", b"\xff\xd8" + b"x" * 50, 1000.0)
    assert has_jpeg_eoi(str(whole), whole.stat().st_size)
    assert not has_jpeg_eoi(str(cut), cut.stat().st_size)
    assert not has_jpeg_eoi(str(tmp_path / "gone.jpg"), 100)
    tiny = write(tmp_path / "tiny.jpg", b"\xff\xd9", 1000.0)
    assert not has_jpeg_eoi(str(tiny), 2)
    # with --jpeg-eoi: a fresh JPEG with the marker is complete, an old one without is not
    assert decide(whole, at=1000.0, jpeg_eoi=True)
    assert not decide(cut, at=2000.0, jpeg_eoi=True)
    assert decide(cut, at=2000.0, jpeg_eoi=False)


def test_jpeg_eoi_ignores_files_that_are_not_jpeg(tmp_path: Path) -> None:
    raw = write(tmp_path / "a.raw", b"no marker", 1000.0)
    assert not decide(raw, at=1000.0, jpeg_eoi=True)
    assert decide(raw, at=1001.0, jpeg_eoi=True)


def test_jpeg_that_grew_since_observed_is_not_complete(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", b"\xff\xd8" + b"x" * 10 + b"\xff\xd9", 1000.0)
    latest = seen(path, 1000.0)
    with open(path, "ab") as f:
        f.write(b"more")
    assert not is_complete(
        path=str(path),
        write_state=WriteState.UNKNOWN,
        first=None,
        latest=latest,
        stable_s=STABLE_S,
        jpeg_eoi=True,
    )


def test_file_being_appended_now_is_not_complete(tmp_path: Path) -> None:
    path = tmp_path / "live.jpg"
    with open(path, "wb") as f:
        f.write(b"a" * 100)
        f.flush()
        now = time.time()
        first = seen(path, now)
        f.write(b"b" * 100)
        f.flush()
        # a second look that sees a different size never counts as stable
        assert not decide(path, at=now + 1.0, first=first, stable_s=10.0)


def test_young_file_needs_more_than_stability_while_settling(tmp_path: Path) -> None:
    # A writer pausing between pieces looks stable for a moment; within the settle time
    # that is not enough, and after it, it is.
    path = write(tmp_path / "a.jpg", b"first piece", 1000.0)
    assert not decide(path, at=1000.1, stable_s=0.005, settle_s=0.5)
    assert decide(path, at=1000.6, stable_s=0.005, settle_s=0.5)
    assert decide(path, at=1000.1, stable_s=0.005, settle_s=0.5, state=WriteState.CLOSED)


def test_mtime_in_the_future_settles_by_unchanged_looks(tmp_path: Path) -> None:
    # A clock ahead of ours (a network share, a copier keeping timestamps): the mtime's age
    # is negative, so the settle time is counted from the first look that saw it as it is.
    path = write(tmp_path / "a.jpg", b"data", 5000.0)
    first = seen(path, 1000.0)
    assert not decide(path, at=1000.1, first=first, settle_s=0.5)
    assert decide(path, at=1000.6, first=first, settle_s=0.5)
    assert decide(path, at=1000.1, first=first, settle_s=0.0)
    assert not decide(path, at=1000.6, settle_s=0.5)  # one look alone proves nothing
    os.utime(path, (5000.5, 5000.5))  # written again since the first look
    assert not decide(path, at=1000.6, first=first, settle_s=0.5)
