"""Live progress for an operator: a tqdm bar on a terminal, plain periodic lines elsewhere.

Responsible for: showing files (done/expected), MB, MB/s, ETA and failures, as a bar when
stderr is a terminal and as one line every --progress-interval seconds when it is not (a log
file, a pipe, systemd's journal). Not responsible for: where the figures come from (a sender
run's snapshots, a trigger server's event status) or stdout, which stays for results
(`--json-stats`, `--json`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Literal, NamedTuple

Mode = Literal["auto", "bar", "lines", "off"]
MODES = ("auto", "bar", "lines", "off")
DEFAULT_INTERVAL = 5.0  # seconds between plain progress lines
FALLBACK_COLUMNS = 100
FALLBACK_ROWS = 24
RATE_WINDOW_S = 10.0  # MB/s and the ETA are taken over the last this many seconds


class Figures(NamedTuple):
    """One reading of a transfer's progress."""

    files: int
    expected: int | None
    bytes: int
    failed: int
    seconds: float

    @property
    def mb(self) -> float:
        return self.bytes / 1e6

    @property
    def mb_per_s(self) -> float:
        return self.mb / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far, when the total is known and files are moving."""
        if not self.expected or not self.files or self.seconds <= 0:
            return None
        left = max(self.expected - self.files - self.failed, 0)
        return left / (self.files / self.seconds)


class Rate(NamedTuple):
    mb_per_s: float
    files_per_s: float


class RecentRate:
    """Rates over the last RATE_WINDOW_S seconds of readings.

    A watching sender idles between bursts of frames; its average since the start only decays,
    so what an operator wants to see is the rate now.
    """

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self._readings: deque[tuple[float, int, int]] = deque()

    def update(self, figures: Figures) -> Rate:
        readings = self._readings
        readings.append((figures.seconds, figures.bytes, figures.files))
        # Keep the newest reading at least `window` old as the start of the window.
        while len(readings) > 2 and figures.seconds - readings[1][0] >= self.window:
            readings.popleft()
        start, start_bytes, start_files = readings[0]
        span = figures.seconds - start
        if span <= 0:  # one reading: the average so far is all there is
            seconds = max(figures.seconds, 1e-9)
            return Rate(figures.mb_per_s, figures.files / seconds)
        return Rate(
            (figures.bytes - start_bytes) / span / 1e6, (figures.files - start_files) / span
        )


def eta_s(figures: Figures, rate: Rate) -> float | None:
    """Seconds left at `rate`, when the total is known and files are moving."""
    if not figures.expected or rate.files_per_s <= 0:
        return None
    return max(figures.expected - figures.files - figures.failed, 0) / rate.files_per_s


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def progress_line(figures: Figures, label: str = "", rate: Rate | None = None) -> str:
    """'camera01: 120/800 files, 45.3 MB, 38.2 MB/s, ETA 12s, 0 failed' (MB/s and ETA from
    `rate`, else from the average so far)."""
    done = f"{figures.files}/{figures.expected}" if figures.expected else f"{figures.files}"
    mb_per_s = rate.mb_per_s if rate is not None else figures.mb_per_s
    eta = eta_s(figures, rate) if rate is not None else figures.eta_s
    text = (
        f"{done} files, {figures.mb:.1f} MB, {mb_per_s:.1f} MB/s, "
        f"ETA {format_eta(eta)}, {figures.failed} failed"
    )
    return f"{label}: {text}" if label else text


class BarView:
    """A tqdm bar; figures come from outside (we set n and total ourselves)."""

    def __init__(self, stream: IO[str], label: str) -> None:
        from tqdm import tqdm  # here, not at import: tqdm costs every command ~20 ms at start

        # A terminal that reports no size (a fresh pty) would get a bar of width 0.
        sized = _columns(stream) > 0
        self.bar = tqdm(
            total=None,
            desc=f"{label}: " if label else "",
            unit="file",
            file=stream,
            dynamic_ncols=sized,
            ncols=None if sized else FALLBACK_COLUMNS,
            nrows=None if sized else FALLBACK_ROWS,  # tqdm hides bars below row `nrows`
            leave=True,
            mininterval=0.2,
            bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} files "
            "[{elapsed}<{remaining}{postfix}]",
        )
        self._format_set = False
        self._rate = RecentRate()

    def show(self, figures: Figures) -> None:
        rate = self._rate.update(figures)
        bar = self.bar
        if figures.expected is None and not self._format_set:
            # Without a total tqdm cannot draw a bar or an ETA: count instead.
            bar.bar_format = "{desc}{n_fmt} files [{elapsed}{postfix}]"
            self._format_set = True
        if figures.expected is not None:
            bar.total = figures.expected
        bar.n = figures.files
        bar.set_postfix_str(
            f"{figures.mb:.1f} MB, {rate.mb_per_s:.1f} MB/s, {figures.failed} failed",
            refresh=False,
        )
        bar.refresh()

    def close(self) -> None:
        self.bar.close()


class LineView:
    """One line every `interval` seconds (and one at the end), through `emit`."""

    def __init__(
        self,
        emit: Callable[[str], None],
        label: str,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.label = label
        self.interval = interval
        self._clock = clock
        self._last = clock()
        self._latest: tuple[Figures, Rate] | None = None
        self._shown: Figures | None = None
        self._rate = RecentRate()

    def show(self, figures: Figures) -> None:
        self._latest = (figures, self._rate.update(figures))
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._shown = figures
            self.emit("progress: " + progress_line(figures, self.label, self._latest[1]))

    def close(self) -> None:
        if self._latest is not None and self._latest[0] != self._shown:
            figures, rate = self._latest
            self.emit("progress: " + progress_line(figures, self.label, rate))


View = BarView | LineView


def choose(mode: Mode, stream: IO[str], *, quiet_default: bool = False) -> str:
    """'bar', 'lines' or 'off' for `mode`: auto is a bar on a terminal, else lines (or off
    when `quiet_default`, e.g. a script asked for --json-stats and reads stderr too)."""
    if mode != "auto":
        return mode
    if _isatty(stream):
        return "bar"
    return "off" if quiet_default else "lines"


def make_view(
    mode: Mode,
    stream: IO[str],
    *,
    label: str = "",
    interval: float = DEFAULT_INTERVAL,
    emit: Callable[[str], None] | None = None,
    quiet_default: bool = False,
) -> View | None:
    kind = choose(mode, stream, quiet_default=quiet_default)
    if kind == "bar":
        return BarView(stream, label)
    if kind == "lines":
        return LineView(
            emit or (lambda line: print(line, file=stream, flush=True)), label, interval
        )
    return None


@contextlib.contextmanager
def keep_logs_above(view: View | None) -> Iterator[None]:
    """While a bar is drawn, route camxfer's log lines through tqdm so they do not tear it."""
    if isinstance(view, BarView):
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm(loggers=[logging.getLogger("camxfer")]):
            yield
    else:
        yield


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
