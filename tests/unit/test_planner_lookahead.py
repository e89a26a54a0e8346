"""Lookahead, the planner's rule: a frame with --lookahead later frames on disk is complete,
whatever the watcher says or however young it is, unless it was written after the newest
of them (a gap filled late, a frame rewritten). Real files and a real inotify watcher."""

from __future__ import annotations

import os
import time
from pathlib import Path

from camxfer.send.completion import WriteState
from camxfer.send.options import SendOptions
from camxfer.send.scan import Planner
from camxfer.send.watch import FolderWatcher
from tests.conftest import frame_name, make_frames


def planner(src: Path, watcher: FolderWatcher | None = None, **kwargs) -> Planner:
    opts = SendOptions(src_dir=src, host="127.0.0.1", port=9, settle_ms=60_000.0, **kwargs)
    return Planner(opts, watcher)


def numbers(plan: Planner) -> list[int]:
    return [item.number for item in plan.scan()]


def test_a_frame_held_open_by_its_writer_is_complete_once_later_frames_exist(
    tmp_path: Path,
) -> None:
    make_frames(tmp_path, 1, first=0, age=0)
    watcher = FolderWatcher.create(tmp_path, recursive=False)
    assert watcher is not None
    try:
        with open(tmp_path / frame_name(0), "ab") as writer:
            writer.write(b"more")
            writer.flush()
            watcher.poll(100)  # applies the write (not news: a write alone readies nothing)
            assert watcher.state(frame_name(0)) is WriteState.WRITING
            plan = planner(tmp_path, watcher, lookahead=2)
            assert numbers(plan) == []  # still written, no later frames, young
            make_frames(tmp_path, 2, first=1, age=0)
            # 0 by lookahead, whatever the watcher says; 1 and 2 because their writer closed them.
            assert numbers(plan) == [0, 1, 2]
            assert watcher.state(frame_name(0)) is WriteState.WRITING
    finally:
        watcher.close()


def test_young_frames_with_later_frames_are_complete_and_the_newest_wait(tmp_path: Path) -> None:
    make_frames(tmp_path, 6, first=0, age=0)  # all written just now, well inside --settle-ms
    assert numbers(planner(tmp_path, lookahead=4)) == [0, 1]
    assert numbers(planner(tmp_path, lookahead=0)) == []  # the signal turned off


def test_a_frame_written_after_the_newest_does_not_count_on_lookahead(tmp_path: Path) -> None:
    make_frames(tmp_path, 4, first=0, age=5.0)
    late = tmp_path / frame_name(0)
    late.write_bytes(b"rewritten by the ring")  # now: newer than frames 1-3
    assert numbers(planner(tmp_path, lookahead=2)) == [1]
    old = time.time() - 10
    os.utime(late, (old, old))  # older than the newest again: lookahead holds
    assert numbers(planner(tmp_path, lookahead=2)) == [0, 1]
