"""The figures a progress display shows: rate now (not since the start), ETA, the line."""

from __future__ import annotations

from camxfer.progress import Figures, LineView, RecentRate, format_eta, progress_line


def reading(seconds: float, files: int, expected: int | None = 100) -> Figures:
    return Figures(
        files=files, expected=expected, bytes=files * 1_000_000, failed=0, seconds=seconds
    )


def test_the_rate_is_the_recent_one_so_an_idle_sender_shows_zero() -> None:
    rate = RecentRate(window=10.0)
    first = rate.update(reading(1.0, 10))
    assert first.mb_per_s == 10.0  # one reading: the average so far
    for second in range(2, 21):  # 10 files per second for 20 s
        busy = rate.update(reading(float(second), 10 * second))
    assert round(busy.mb_per_s, 6) == 10.0 and round(busy.files_per_s, 6) == 10.0
    for second in range(21, 40):  # then nothing for 19 s
        idle = rate.update(reading(float(second), 200))
    assert idle.mb_per_s == 0.0
    assert reading(39.0, 200).mb_per_s > 5  # the average since the start would still say 5+


def test_line_has_files_mb_rate_eta_and_failures() -> None:
    figures = Figures(files=40, expected=100, bytes=40_000_000, failed=2, seconds=4.0)
    rate = RecentRate().update(figures)
    line = progress_line(figures, "camera01", rate)
    # 58 files left at 10 files/s.
    assert line == "camera01: 40/100 files, 40.0 MB, 10.0 MB/s, ETA 6s, 2 failed"
    assert progress_line(reading(2.0, 5, expected=None)) == (
        "5 files, 5.0 MB, 2.5 MB/s, ETA ?, 0 failed"
    )
    assert [format_eta(s) for s in (None, 0.4, 59, 61, 3725)] == [
        "?",
        "0s",
        "59s",
        "1m01s",
        "1h02m",
    ]


def test_lines_come_at_the_interval_and_once_at_the_end() -> None:
    now = [0.0]
    lines: list[str] = []
    view = LineView(lines.append, "", interval=5.0, clock=lambda: now[0])
    for tick in range(1, 13):  # a reading every second for 12 s
        now[0] = float(tick)
        view.show(reading(float(tick), tick))
    view.close()
    assert [line.split(" files")[0] for line in lines] == [
        "progress: 5/100",
        "progress: 10/100",
        "progress: 12/100",
    ]
