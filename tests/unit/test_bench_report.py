"""The benchmark's targets table (`bench.report`): verdicts from the ratios of one run, and a
note beside a missed goal that the durable ceiling (cp -r + sync) did not reach either."""

from __future__ import annotations

from bench.measure import Measurement
from bench.report import bulk_targets, small_targets, targets_table


def row(name: str, mb_s: float, group: str = "peer", files: int = 1000) -> Measurement:
    # One repetition of 1 s moving mb_s MB: MB/s = mb_s, files/s = files.
    return Measurement(
        name, name, group, "loopback", files=files, seconds=[1.0], bytes=[int(mb_s * 1e6)]
    )


def by_what(targets):
    return {t.what: t for t in targets}


def test_a_goal_the_durable_ceiling_misses_too_is_noted_as_beyond_it() -> None:
    rows = [
        row("camxfer (default)", 1000, "camxfer"),
        row("camxfer (tuned)", 1100, "camxfer"),
        row("cp -r", 3500, "ceiling"),
        row("cp -r + sync", 1300, "ceiling"),
        row("tar | nc", 540),
        row("sendfile+recv_into fsync", 600),
    ]
    found = by_what(bulk_targets("loopback", rows))
    tar = found["camxfer (default) / tar | nc"]
    assert tar.met is False and round(tar.value, 2) == 1.85
    assert tar.note.startswith("cp -r + sync itself: 2.41x")
    cp = found["camxfer (tuned) / cp -r"]
    assert cp.met is False and "0.37x" in cp.note
    baseline = found["camxfer (default) / sendfile+recv_into fsync"]
    assert baseline.met is True and baseline.note == ""
    rsync = found["camxfer (default) / rsync daemon"]
    assert rsync.value is None and rsync.note == ""
    text = targets_table(list(found.values()))
    assert "the goal is above the durable ceiling" in text
    assert "not measured" in text


def test_a_missed_goal_the_ceiling_reaches_has_no_note() -> None:
    rows = [
        row("camxfer (default)", 1000, "camxfer"),
        row("cp -r + sync", 1400, "ceiling"),
        row("tar | nc", 500),
    ]
    tar = by_what(bulk_targets("loopback", rows))["camxfer (default) / tar | nc"]
    assert tar.met is False and tar.note == ""


def test_small_files_compare_with_the_ceilings_files_per_second() -> None:
    beyond = [row("camxfer (default)", 200, "camxfer", 2400), row("cp -r + sync", 200, "c", 2900)]
    within = [row("camxfer (default)", 200, "camxfer", 2400), row("cp -r + sync", 200, "c", 5000)]
    met = [row("camxfer (default)", 200, "camxfer", 3100), row("cp -r + sync", 200, "c", 2900)]
    assert by_what(small_targets("loopback", beyond))["camxfer (default)"].note.startswith(
        "cp -r + sync itself: 2900 files/s"
    )
    assert by_what(small_targets("loopback", within))["camxfer (default)"].note == ""
    assert by_what(small_targets("loopback", met))["camxfer (default)"].met is True
