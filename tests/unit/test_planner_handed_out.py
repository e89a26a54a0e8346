"""`Planner.all_handed_out`: true once every file a --max-files run asked for is in flight or
final, so the sender waits on its workers' results alone and ends at the last ack; false
while any asked file is still to come, absent, or sent back for a recheck."""

from __future__ import annotations

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
