"""`Planner.all_handed_out`: true once every file a --max-files run asked for is in flight or
final, so the sender waits on its workers' results alone and ends at the last ack; false
while any asked file is still to come, absent, or sent back for a recheck.
`Planner.backlog_handed_out`, the same for a --once run's backlog: while it holds, the sender
does not scan the folder again."""

from __future__ import annotations

import time
from pathlib import Path

from camxfer.send.options import SendOptions
from camxfer.send.scan import Planner
from tests.conftest import frame_name, make_frames


def planner(src: Path, **kwargs) -> Planner:
    return Planner(SendOptions(src_dir=src, host="127.0.0.1", port=9, **kwargs))


def test_numbered_run_is_handed_out_when_every_asked_frame_is_in_flight(tmp_path: Path) -> None:
    make_frames(tmp_path, 5, first=10)
    plan = planner(tmp_path, start_at=frame_name(10), max_files=3)
    assert not plan.all_handed_out
    items = plan.scan()
    assert [item.number for item in items] == [10, 11, 12]
    assert plan.all_handed_out
    plan.recheck(items[1])  # it changed while read: to be judged again
    assert not plan.all_handed_out
    again = plan.scan()
    assert [item.number for item in again] == [11] and plan.all_handed_out
    for item in [items[0], items[2], *again]:
        plan.mark_final(item)
    assert plan.all_handed_out and plan.finished


def test_numbered_run_with_an_absent_frame_is_not_handed_out(tmp_path: Path) -> None:
    make_frames(tmp_path, 2, first=1)
    make_frames(tmp_path, 2, first=4)  # frame 3 not written (yet)
    plan = planner(tmp_path, start_at=frame_name(1), max_files=5)
    assert len(plan.scan()) == 4
    assert not plan.all_handed_out


def test_named_run_and_open_ended_runs(tmp_path: Path) -> None:
    for name in ("a.bin", "b.bin", "c.bin"):
        (tmp_path / name).write_bytes(b"x" * 100)
    plan = planner(tmp_path, pattern="*.bin", max_files=2, lookahead=1)
    assert [item.rel for item in plan.scan()] == ["a.bin", "b.bin"]
    assert plan.all_handed_out
    endless = planner(tmp_path, pattern="*.bin", lookahead=1)
    endless.scan()
    assert not endless.all_handed_out  # no --max-files: more files may always come
    once = planner(tmp_path, pattern="*.bin", max_files=2, once=True, lookahead=1)
    once.scan()
    assert not once.all_handed_out  # --once has its own end (the backlog)


def test_once_backlog_is_handed_out_only_while_every_file_is_in_flight(tmp_path: Path) -> None:
    make_frames(tmp_path, 6, first=1, age=0)  # just written
    plan = planner(tmp_path, once=True, settle_ms=300)
    assert not plan.backlog_handed_out  # not even listed yet
    items = plan.scan()  # frames 1-2 by lookahead; 3-6 are too young to judge yet
    assert [item.number for item in items] == [1, 2]
    assert not plan.backlog_handed_out
    while len(items) < 6 and plan.waiting_for_completion:
        time.sleep(0.05)
        items += plan.scan()
    assert [item.number for item in items] == [1, 2, 3, 4, 5, 6]
    assert plan.backlog_handed_out
    plan.recheck(items[3])
    assert not plan.backlog_handed_out
    again = plan.scan()
    assert [item.number for item in again] == [4] and plan.backlog_handed_out
    for item in [*items[:3], *items[4:], *again]:
        plan.mark_final(item)
    assert plan.backlog_handed_out and plan.finished


def test_once_named_backlog_is_handed_out_when_every_file_is_in_flight(tmp_path: Path) -> None:
    for name in ("a.bin", "b.bin", "c.bin"):
        (tmp_path / name).write_bytes(b"x" * 100)
    plan = planner(tmp_path, pattern="*.bin", once=True, lookahead=1, settle_ms=300)
    items = plan.scan()
    assert [item.rel for item in items] == ["a.bin", "b.bin"]
    assert not plan.backlog_handed_out  # c.bin, the newest, is too young to judge yet
    while len(items) < 3 and plan.waiting_for_completion:
        time.sleep(0.05)
        items += plan.scan()
    assert [item.rel for item in items] == ["a.bin", "b.bin", "c.bin"]
    assert plan.backlog_handed_out
