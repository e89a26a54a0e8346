"""The sender's inotify binding (`camxfer.send.inotify`) against the real kernel: each event the
watcher relies on arrives with its name, a lost-events overflow is reported, a removed folder
says so, and bad calls are OSErrors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from camxfer.send import inotify as F

WATCHED = F.CREATE | F.MODIFY | F.CLOSE_WRITE | F.MOVED_TO | F.DELETE | F.MOVED_FROM


@pytest.fixture
def watch():
    instance = F.Inotify()
    yield instance
    instance.close()


def names_and_masks(events: list[F.Event]) -> list[tuple[str, int]]:
    return [(event.name, event.mask) for event in events]


def test_the_events_a_sender_needs_arrive_with_their_names(watch, tmp_path: Path) -> None:
    wd = watch.add_watch(str(tmp_path), WATCHED)
    (tmp_path / "frame_1.jpg").write_bytes(b"frame")
    os.rename(tmp_path / "frame_1.jpg", tmp_path / "frame_2.jpg")
    (tmp_path / "frame_2.jpg").unlink()
    (tmp_path / "sub").mkdir()
    events = watch.read(1000)
    assert {event.wd for event in events} == {wd}
    assert names_and_masks(events) == [
        ("frame_1.jpg", F.CREATE),
        ("frame_1.jpg", F.MODIFY),
        ("frame_1.jpg", F.CLOSE_WRITE),
        ("frame_1.jpg", F.MOVED_FROM),
        ("frame_2.jpg", F.MOVED_TO),
        ("frame_2.jpg", F.DELETE),
        ("sub", F.CREATE | F.ISDIR),
    ]
    moved_from, moved_to = events[3], events[4]
    assert moved_from.cookie == moved_to.cookie != 0  # the kernel pairs a rename's halves


def test_nothing_happening_is_an_empty_read_after_the_timeout(watch, tmp_path: Path) -> None:
    watch.add_watch(str(tmp_path), WATCHED)
    assert watch.read(20) == []


def test_a_name_that_is_not_utf8_round_trips(watch, tmp_path: Path) -> None:
    watch.add_watch(str(tmp_path), F.CREATE)
    raw = b"frame_\xff.jpg"
    os.close(os.open(os.path.join(os.fsencode(tmp_path), raw), os.O_CREAT | os.O_WRONLY))
    [event] = watch.read(1000)
    assert os.fsencode(event.name) == raw


def test_lost_events_are_reported_as_an_overflow(watch, tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    watch.add_watch(str(tmp_path), F.MODIFY)
    fds = [os.open(tmp_path / name, os.O_CREAT | os.O_WRONLY) for name in ("a", "b")]
    try:
        for i in range(limit + 10):  # alternating files: the kernel merges only repeats
            os.write(fds[i % 2], b"x")
    finally:
        for fd in fds:
            os.close(fd)
    events = watch.read(1000)
    assert len(events) == limit + 1
    assert events[-1].mask & F.Q_OVERFLOW


def test_a_removed_folder_ends_its_watch(watch, tmp_path: Path) -> None:
    folder = tmp_path / "ring"
    folder.mkdir()
    wd = watch.add_watch(str(folder), WATCHED)
    folder.rmdir()
    events = watch.read(1000)
    assert any(event.wd == wd and event.mask & F.IGNORED for event in events)


def test_bad_watches_are_os_errors(watch, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError) as not_a_folder:
        watch.add_watch(str(tmp_path / "file"), F.CREATE | F.ONLYDIR)
    assert not_a_folder.value.errno == errno.ENOTDIR
    with pytest.raises(FileNotFoundError):
        watch.add_watch(str(tmp_path / "missing"), F.CREATE)
