"""Path safety on the receiver: wire names and destinations never lead outside --out-dir.

`resolve_destination` is checked on strings; `LandingRoot`/`FileLanding` are checked on real
folders with planted symlinks, asserting on what exists on disk afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camxfer.errors import UnsafePathError
from camxfer.recv.landing import (
    TEMP_PREFIX,
    ExistsDifferent,
    FileLanding,
    LandingRoot,
    remove_stale_temps,
    resolve_destination,
)
from tests.conftest import checksum

SAFE = r"[A-Za-z0-9_][A-Za-z0-9_.+@=,-]{0,254}"


def land(root: LandingRoot, folders: list[str], name: str, data: bytes) -> Path:
    landing = FileLanding(root, folders, name, len(data), checksum(data))
    landing.write(memoryview(data))
    return landing.commit().path


def all_entries(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# --- resolve_destination -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dest", "name", "expected"),
    [
        ("", "frame_1.jpg", ([], "frame_1.jpg")),
        ("ball_001/camera01", "frame_1.jpg", (["ball_001", "camera01"], "frame_1.jpg")),
        ("ball_001/camera01/", "sub/frame_1.jpg", (["ball_001", "camera01", "sub"], "frame_1.jpg")),
        ("./a//b", "x.jpg", (["a", "b"], "x.jpg")),
    ],
)
def test_relative_destination_joins(
    tmp_path: Path, dest: str, name: str, expected: tuple[list[str], str]
) -> None:
    assert resolve_destination(tmp_path / "out", dest, name) == expected


def test_absolute_destination_inside_out_dir(tmp_path: Path) -> None:
    root = tmp_path / "x" / "mnt"
    dest = f"{root}/destination/"
    assert resolve_destination(root, dest, "f.jpg") == (["destination"], "f.jpg")
    assert resolve_destination(root, str(root), "f.jpg") == ([], "f.jpg")
    assert resolve_destination(root, f"{root}/a/./b", "f.jpg") == (["a", "b"], "f.jpg")


def test_absolute_destination_through_a_symlinked_root(tmp_path: Path) -> None:
    real = tmp_path / "media" / "mnt"
    real.mkdir(parents=True)
    (tmp_path / "mnt").symlink_to(real)
    # The receiver was started with --out-dir <tmp>/mnt; senders may name either spelling.
    assert resolve_destination(tmp_path / "mnt", f"{real}/d", "f.jpg") == (["d"], "f.jpg")
    assert resolve_destination(tmp_path / "mnt", f"{tmp_path}/mnt/d", "f.jpg") == (["d"], "f.jpg")


@pytest.mark.parametrize(
    ("dest", "name"),
    [
        ("../x", "f.jpg"),
        ("/etc/passwd", "f.jpg"),
        ("/etc", "passwd"),
        ("a/../../b", "f.jpg"),
        ("..", "f.jpg"),
        (".x", "f.jpg"),
        ("x\0y", "f.jpg"),
        ("a\\..\\b", "f.jpg"),
        ("x" * 300, "f.jpg"),
        ("", ""),
        ("", "."),
        ("", "/"),
        ("", "../x"),
        ("", "../../x"),
        ("", ".."),
        ("", ".x"),
        ("", ".camxfer-tmp-1-1"),
        ("", "x\0y"),
        ("", "a\\b.jpg"),
        ("", "a/../../b"),
        ("", "x" * 300),
        ("", "/etc/passwd"),
        ("", "/etc/x"),
        ("", "sub/.hidden/f.jpg"),
        ("", "fr\u0430me.jpg"),  # Cyrillic small a, a look-alike
        ("", "f\u2215x.jpg"),  # division slash, a look-alike separator
    ],
)
def test_unsafe_paths_rejected(tmp_path: Path, dest: str, name: str) -> None:
    with pytest.raises(UnsafePathError):
        resolve_destination(tmp_path / "out", dest, name)


@pytest.mark.parametrize("inside", ["..", "../other", "/../../etc", "/./../x"])
def test_absolute_destination_escaping_with_dots(tmp_path: Path, inside: str) -> None:
    root = tmp_path / "x" / "mnt"
    with pytest.raises(UnsafePathError):
        resolve_destination(root, f"{root}/{inside}".replace("//", "/"), "f.jpg")


def test_absolute_destination_sharing_a_prefix_is_outside(tmp_path: Path) -> None:
    root = tmp_path / "mnt"
    with pytest.raises(UnsafePathError, match="outside"):
        resolve_destination(root, f"{tmp_path}/mnt2/d", "f.jpg")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_resolved_components_always_safe(dest: str, name: str) -> None:
    root = Path("/srv/camxfer/out")
    try:
        folders, final = resolve_destination(root, dest, name)
    except UnsafePathError:
        return
    for part in [*folders, final]:
        assert re.fullmatch(SAFE, part), part
    target = Path(os.path.normpath(root.joinpath(*folders, final)))
    assert target.is_relative_to(root)


# --- the landing root on disk --------------------------------------------------------------------
def test_lands_whole_file_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = LandingRoot(out)
    try:
        path = land(root, ["a", "b"], "f.jpg", b"hello")
    finally:
        root.close()
    assert path == out / "a" / "b" / "f.jpg"
    assert path.read_bytes() == b"hello"
    assert all_entries(out) == {"a", "a/b", "a/b/f.jpg"}


def test_planted_directory_symlink_is_refused(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "evil").symlink_to(outside)
    (out / "ok").mkdir()
    (out / "ok" / "deeper").symlink_to(outside)
    root = LandingRoot(out)
    try:
        for folders in (["evil"], ["evil", "sub"], ["ok", "deeper"]):
            with pytest.raises(UnsafePathError):
                FileLanding(root, folders, "f.jpg", 1, checksum(b"x"))
    finally:
        root.close()
    assert list(outside.iterdir()) == []
    assert temps_left(out) == []


def test_workers_opening_a_new_folder_at_once_all_get_the_same_one(tmp_path: Path) -> None:
    """The folder is opened first and made only when absent: racing makers all end up
    with the one folder, none with an error."""
    root = LandingRoot(tmp_path / "out")
    start = threading.Barrier(8)
    inodes: list[int] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            fd = root.open_folder(["ball_1", "camera01", "day"])
            inodes.append(os.fstat(fd).st_ino)
            os.close(fd)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    root.close()
    assert errors == []
    assert len(inodes) == 8 and len(set(inodes)) == 1
    assert inodes[0] == (tmp_path / "out" / "ball_1" / "camera01" / "day").stat().st_ino


def test_dangling_symlink_to_a_future_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "later").symlink_to(tmp_path / "not-yet")
    root = LandingRoot(out)
    try:
        with pytest.raises(UnsafePathError):
            FileLanding(root, ["later"], "f.jpg", 1, checksum(b"x"))
    finally:
        root.close()
    assert not (tmp_path / "not-yet").exists()


def test_planted_file_symlink_is_not_followed(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    target = outside / "victim"
    target.write_bytes(b"precious")
    (out / "f.jpg").symlink_to(target)
    root = LandingRoot(out)
    try:
        with pytest.raises(ExistsDifferent):
            land(root, [], "f.jpg", b"attacker")
    finally:
        root.close()
    assert target.read_bytes() == b"precious"
    assert (out / "f.jpg").is_symlink()
    assert temps_left(out) == []


def test_regular_file_in_the_way_of_a_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_bytes(b"file")
    root = LandingRoot(out)
    try:
        with pytest.raises(UnsafePathError):
            FileLanding(root, ["a"], "f.jpg", 1, checksum(b"x"))
    finally:
        root.close()
    assert (out / "a").read_bytes() == b"file"


def test_existing_identical_file_is_a_duplicate_and_different_one_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = LandingRoot(out)
    try:
        land(root, [], "f.jpg", b"one")
        landing = FileLanding(root, [], "f.jpg", 3, checksum(b"one"))
        landing.write(memoryview(b"one"))
        assert landing.commit().status == "duplicate"
        with pytest.raises(ExistsDifferent):
            land(root, [], "f.jpg", b"two")
    finally:
        root.close()
    assert (out / "f.jpg").read_bytes() == b"one"
    assert all_entries(out) == {"f.jpg"}


def test_short_or_corrupt_body_never_lands(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = LandingRoot(out)
    try:
        short = FileLanding(root, [], "short.jpg", 10, checksum(b"0123456789"))
        short.write(memoryview(b"01234"))
        with pytest.raises(Exception, match="checksum"):
            short.commit()
        corrupt = FileLanding(root, [], "bad.jpg", 3, checksum(b"abc"))
        corrupt.write(memoryview(b"abX"))
        with pytest.raises(Exception, match="checksum"):
            corrupt.commit()
        aborted = FileLanding(root, [], "gone.jpg", 3, checksum(b"abc"))
        aborted.write(memoryview(b"ab"))
        aborted.abort()
    finally:
        root.close()
    assert all_entries(out) == set()


def test_stale_temps_of_dead_writers_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead = f"{TEMP_PREFIX}999999999-3"  # no such pid
    mine = f"{TEMP_PREFIX}{os.getpid()}-1"
    for rel in (dead, f"sub/{dead}", mine, "keep.jpg"):
        (out / rel).write_bytes(b"x")
    assert remove_stale_temps(out) == 2
    assert all_entries(out) == {"sub", mine, "keep.jpg"}
    assert remove_stale_temps(out, only_pids={os.getpid()}) == 1
    assert all_entries(out) == {"sub", "keep.jpg"}


def temps_left(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(f"{TEMP_PREFIX}*")]


def test_directory_swapped_for_a_symlink_during_writes_never_leads_outside(
    tmp_path: Path,
) -> None:
    """A thread keeps replacing out/d by a symlink to a folder outside (moving the real d
    aside) while files land in d: each lands inside the root or is refused, never outside."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            with contextlib.suppress(OSError):
                os.rename(out / "d", out / f"aside{swaps}")
            with contextlib.suppress(OSError):
                os.symlink(outside, out / "d")
                swaps += 1
            with contextlib.suppress(OSError):
                os.unlink(out / "d")

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    root = LandingRoot(out)
    landed = refused = 0
    try:
        for i in range(400):
            try:
                land(root, ["d"], f"f{i}.jpg", b"data")
                landed += 1
            except (UnsafePathError, FileNotFoundError):
                refused += 1
    finally:
        stop.set()
        thread.join(5)
        root.close()
    assert list(outside.iterdir()) == []
    assert swaps > 0 and landed + refused == 400
    inside = sorted(p.name for p in out.rglob("f*.jpg"))
    assert len(inside) == landed
    assert temps_left(out) == []
