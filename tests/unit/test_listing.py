"""The sender's incremental folder listing (`camxfer.send.listing`) on real folders, with a
real inotify watcher: whatever path the index took (full listings, the watcher's record of
names that came and went, or both), it must list exactly what a fresh listing of the folder
lists."""

from __future__ import annotations

import fnmatch
import os
import random
import threading
from pathlib import Path

import pytest

from camxfer.send.completion import WriteState
from camxfer.send.listing import FolderIndex, NumberIndex
from camxfer.send.watch import FolderWatcher


def wanted(name: str) -> bool:
    return not name.startswith(".") and fnmatch.fnmatchcase(name, "*.jpg")


def fresh_names(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir() if wanted(p.name) and p.is_file() and not p.is_symlink()
    )


def test_refresh_keeps_wanted_regular_files_in_name_order(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.jpg", ".hidden.jpg", "notes.txt", "c.jpg.part"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "link.jpg").symlink_to(tmp_path / "a.jpg")
    (tmp_path / "dir-link.jpg").symlink_to(tmp_path / "folder.jpg")
    os.mkfifo(tmp_path / "fifo.jpg")
    index = FolderIndex(tmp_path, wanted)
    # The first listing reads file types from the folder (scandir); later ones lstat.
    assert index.refresh() == (["a.jpg", "b.jpg"], [])
    assert index.entries == [(n, str(tmp_path / n)) for n in ("a.jpg", "b.jpg")]
    (tmp_path / "a.jpg").unlink()
    (tmp_path / "c.jpg").write_bytes(b"x")
    assert index.refresh() == (["c.jpg"], ["a.jpg"])
    assert index.names == ["b.jpg", "c.jpg"]
    assert index.refresh() == ([], [])


def test_a_symlink_replaced_by_a_file_is_listed_after_all(tmp_path: Path) -> None:
    """A name judged "not a regular file" is judged again, not remembered as unwanted."""
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "f.jpg").symlink_to(tmp_path / "target")
    index = FolderIndex(tmp_path, wanted)
    index.refresh()
    assert index.names == []
    (tmp_path / "new").write_bytes(b"frame")
    os.rename(tmp_path / "new", tmp_path / "f.jpg")
    assert index.refresh() == (["f.jpg"], [])


def test_applied_changes_match_a_fresh_listing(tmp_path: Path) -> None:
    """Random creates, deletes, renames in and out, and files that come and go between two
    looks: the index fed only by the watcher agrees with a fresh listing after every batch."""
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "ring"
    folder.mkdir()
    watcher = FolderWatcher(folder, recursive=False)
    try:
        index = FolderIndex(folder, wanted)
        index.refresh()
        watcher.take_changes()
        rng = random.Random(7)
        names = [f"frame_{i:03d}.jpg" for i in range(40)] + ["x.txt", ".tmp.jpg"]
        for _batch in range(60):
            for _op in range(rng.randint(1, 12)):
                name = rng.choice(names)
                path = folder / name
                op = rng.random()
                if op < 0.4:
                    path.write_bytes(b"x")
                elif op < 0.6 and path.exists():
                    path.unlink()
                elif op < 0.8:
                    staged = outside / name
                    staged.write_bytes(b"y")
                    os.rename(staged, path)  # renamed in, maybe over an existing file
                elif path.exists() and not path.is_dir():
                    os.rename(path, outside / name)  # renamed out
            changes = watcher.take_changes()
            assert changes is not None
            before = list(index.names)
            added, removed = index.apply(changes)
            assert index.names == fresh_names(folder)
            assert sorted(set(before) - set(index.names)) == removed
            assert sorted(set(index.names) - set(before)) == added
    finally:
        watcher.close()


def test_lost_events_ask_for_a_listing(tmp_path: Path) -> None:
    """More events than the kernel queues (fs.inotify.max_queued_events): the watcher reports
    that its record is incomplete instead of handing out a partial one."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 40_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to overflow it here")
    watcher = FolderWatcher(tmp_path, recursive=False)
    try:
        for i in range(limit // 2 + 100):  # each file: a create and a close event
            (tmp_path / f"f{i}.jpg").write_bytes(b"")
        assert watcher.take_changes() is None
        assert watcher.take_changes() == []  # a listing was owed once, then records resume
    finally:
        watcher.close()


def test_number_index_starts_at_the_first_unsent_frame() -> None:
    def number_of(name: str) -> int | None:
        stem = name.removeprefix("frame_").removesuffix(".jpg")
        return int(stem) if stem.isdigit() else None

    index = NumberIndex(number_of)
    for name in ("frame_000005.jpg", "frame_000003.jpg", "frame_000009.jpg", "other.jpg"):
        index.add(name)
    assert index.from_number(4) == [(5, "frame_000005.jpg"), (9, "frame_000009.jpg")]
    # The same frame under a second width: the name that sorts later wins, as in a listing,
    # and removing either leaves the other.
    index.add("frame_05.jpg")
    assert index.from_number(5)[0] == (5, "frame_05.jpg")
    index.remove("frame_05.jpg", ["frame_000003.jpg", "frame_000005.jpg", "frame_000009.jpg"])
    assert index.from_number(5)[0] == (5, "frame_000005.jpg")
    index.remove("frame_000005.jpg", ["frame_000003.jpg", "frame_000009.jpg"])
    assert index.from_number(0) == [(3, "frame_000003.jpg"), (9, "frame_000009.jpg")]
    index.remove("frame_000007.jpg", [])  # never there: nothing changes
    assert index.numbers == [3, 9]


def test_a_replaced_folder_asks_for_a_listing_then_is_watched_again(tmp_path: Path) -> None:
    """The watched folder removed and made again: the watch is gone with the old folder, so
    the record of names needs a listing; then the new folder is watched. (It was not: the
    sender polled without seeing writers, so frames waited out --settle-ms.)"""
    folder = tmp_path / "ring"
    folder.mkdir()
    watcher = FolderWatcher(folder, recursive=False)
    try:
        (folder / "a.jpg").write_bytes(b"x")
        assert watcher.take_changes() == [(True, "a.jpg")]
        (folder / "a.jpg").unlink()
        folder.rmdir()
        folder.mkdir()
        (folder / "b.jpg").write_bytes(b"x")
        assert watcher.take_changes() is None
        with open(folder / "c.jpg", "wb") as f:
            f.write(b"x")
            assert watcher.take_changes() == [(True, "c.jpg")]
            assert watcher.state("c.jpg") is WriteState.WRITING
        watcher.poll(0)
        assert watcher.state("c.jpg") is WriteState.CLOSED
    finally:
        watcher.close()


def test_a_folder_moved_away_is_not_taken_for_ours(tmp_path: Path) -> None:
    """The watch follows a folder moved aside; what happens in it afterwards is not about the
    folder at our path. Its write states went with it: a stale 'writing' held the same name
    in a new folder back for ever, a stale 'closed' would send it half written."""
    folder = tmp_path / "ring"
    folder.mkdir()
    watcher = FolderWatcher(folder, recursive=False)
    try:
        (folder / "a.jpg").write_bytes(b"x")
        with open(folder / "b.jpg", "wb") as writer:  # held open across the move
            writer.write(b"half")
            writer.flush()
            watcher.take_changes()
            assert watcher.state("b.jpg") is WriteState.WRITING
            folder.rename(tmp_path / "ring.old")
            folder.mkdir()
            (tmp_path / "ring.old" / "a.jpg").write_bytes(b"again")
        assert watcher.take_changes() is None  # a listing of the new folder
        assert watcher.take_changes() == []
        assert watcher.state("a.jpg") is WriteState.UNKNOWN
        assert watcher.state("b.jpg") is WriteState.UNKNOWN
    finally:
        watcher.close()


def test_folders_listed_by_many_threads_at_once_each_list_their_own(tmp_path: Path) -> None:
    """Readers take turns (one folder read at a time per process): six cameras' first
    listings and later full listings, started together, still each list their own folder."""
    folders = []
    for camera in range(6):
        folder = tmp_path / f"camera{camera}"
        folder.mkdir()
        for number in range(300):
            (folder / f"frame_camera{camera}_{number:09d}.jpg").write_bytes(b"x")
        folders.append(folder)
    indexes = [FolderIndex(folder, wanted) for folder in folders]
    start = threading.Barrier(len(indexes))
    results: dict[int, list[tuple[list[str], list[str]]]] = {}

    def list_twice(slot: int) -> None:
        start.wait()
        first = indexes[slot].refresh()
        (folders[slot] / f"frame_camera{slot}_000000300.jpg").write_bytes(b"x")
        results[slot] = [first, indexes[slot].refresh()]

    threads = [threading.Thread(target=list_twice, args=(slot,), daemon=True) for slot in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for slot, folder in enumerate(folders):
        (first_added, _), (later_added, later_removed) = results[slot]
        assert len(first_added) == 300 and all(f"camera{slot}_" in n for n in first_added)
        assert later_added == [f"frame_camera{slot}_000000300.jpg"] and later_removed == []
        assert indexes[slot].names == fresh_names(folder)


@pytest.mark.parametrize("root", ["tmp", ".", "/"])
def test_entries_name_the_files_as_os_path_join_would(tmp_path: Path, root: str) -> None:
    folder = tmp_path if root == "tmp" else Path(root)
    if root == "tmp":
        (tmp_path / "frame_camera01_000000007.jpg").write_bytes(b"x")
    index = FolderIndex(folder, wanted)
    index.refresh()
    if root == "tmp":
        assert index.names == ["frame_camera01_000000007.jpg"]
    assert index.entries == [(name, os.path.join(str(folder), name)) for name in index.names]
    assert index.path("frame_camera01_000000001.jpg") == os.path.join(
        str(folder), "frame_camera01_000000001.jpg"
    )


def test_a_folder_deleted_and_made_again_lists_as_empty_then_anew(tmp_path: Path) -> None:
    folder = tmp_path / "ring"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"x")
    index = FolderIndex(folder, wanted)
    assert index.refresh() == (["a.jpg"], [])
    (folder / "a.jpg").unlink()
    folder.rmdir()
    assert index.refresh() == ([], ["a.jpg"])  # was FileNotFoundError
    assert index.gone
    folder.mkdir()
    (folder / "b.jpg").write_bytes(b"x")
    assert index.refresh() == (["b.jpg"], [])
    assert not index.gone
