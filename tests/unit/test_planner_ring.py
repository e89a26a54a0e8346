"""A trigger into a ring of many frames: the planner's index holds only the frames from the
first one asked for (a trigger's first scan of a 5,000-frame ring judged and indexed every
frame), and the frames it hands out are exactly the asked ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

from camxfer.send.options import SendOptions
from camxfer.send.scan import Planner
from tests.conftest import frame_name, make_frames


def planner(src: Path, **kwargs) -> Planner:
    return Planner(SendOptions(src_dir=src, host="127.0.0.1", port=9, **kwargs))


def listed(plan: Planner) -> list[str]:
    return [name for name, _path in plan.list_folder().entries]


def test_a_trigger_indexes_the_ring_from_its_first_frame_on(tmp_path: Path) -> None:
    make_frames(tmp_path, 50, first=0)
    (tmp_path / "notes.jpg").write_bytes(b"no frame number")  # not a frame: listed as before
    plan = planner(tmp_path, start_at=frame_name(40), max_files=5, lookahead=1)
    assert [item.number for item in plan.scan()] == [40, 41, 42, 43, 44]
    assert listed(plan) == [*(frame_name(n) for n in range(40, 50)), "notes.jpg"]


def test_a_frame_below_the_first_stays_out_and_one_above_it_comes_in(tmp_path: Path) -> None:
    make_frames(tmp_path, 10, first=0)
    plan = planner(tmp_path, start_at=frame_name(5), max_files=10, lookahead=1)
    assert [item.number for item in plan.scan()] == [5, 6, 7, 8, 9]
    # The ring rewrites frame 2 and the camera writes frames 10 and 11 (another width, the
    # same numbering), all after the first listing: the full listing sees every one.
    (tmp_path / frame_name(2)).write_bytes(b"rewritten")
    (tmp_path / "frame_camera01_10.jpg").write_bytes(b"ten")
    (tmp_path / frame_name(11)).write_bytes(b"eleven")
    old = time.time() - 5
    for name in (frame_name(2), "frame_camera01_10.jpg", frame_name(11)):
        os.utime(tmp_path / name, (old, old))
    assert [item.number for item in plan.scan()] == [10, 11]
    assert frame_name(2) not in listed(plan)
    assert "frame_camera01_10.jpg" in listed(plan)


def test_hidden_names_and_other_patterns_above_the_first_stay_out(tmp_path: Path) -> None:
    # The number is looked at first (frames below the first need no more); a numbered name
    # above it must still pass the hidden-name and pattern checks.
    make_frames(tmp_path, 10, first=0)
    for name in ("." + frame_name(7), frame_name(8).replace(".jpg", ".png")):
        (tmp_path / name).write_bytes(b"not a frame to send")
    plan = planner(tmp_path, start_at=frame_name(5), max_files=10, lookahead=1)
    items = plan.scan()
    assert [item.rel for item in items] == [frame_name(n) for n in range(5, 10)]
    assert listed(plan) == [frame_name(n) for n in range(5, 10)]
    # A narrower --pattern leaves out a frame whose number is above the first.
    narrow = planner(tmp_path, start_at=frame_name(5), max_files=10, pattern="*[0-8].jpg")
    assert [item.rel for item in narrow.scan()] == [frame_name(n) for n in range(5, 9)]


def test_a_young_frame_deleted_before_it_settled_is_not_waited_on(tmp_path: Path) -> None:
    """The planner keeps a first look at each young file, and polls every --stable-ms while
    it holds any. A young frame the ring deleted kept its look for ever: a continuous sender
    went on scanning the folder every 5 ms instead of every --poll-ms, for the rest of its run."""
    make_frames(tmp_path, 2, first=0, age=600.0)
    make_frames(tmp_path, 1, first=2, age=0)  # written just now: not settled yet
    plan = planner(tmp_path, settle_ms=60_000.0)
    assert [item.number for item in plan.scan()] == [0, 1]
    assert plan.waiting_for_completion
    (tmp_path / frame_name(2)).unlink()
    assert plan.scan() == []
    assert not plan.waiting_for_completion
