"""The bulk and small-frame modes: every contender over one data set and one link.

Responsible for: choosing the contenders (`--only`), measuring them in a fixed order
(ceilings, peers, baselines, camxfer default, camxfer tuned candidates), round-robin, and
picking the best candidate as "tuned".
Not responsible for: the data set, the link or the printing (run.py, report.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import baselines, ceiling, peers
from bench.camxfer_runs import (
    DEFAULT,
    QUICK_TUNED,
    TUNED_CANDIDATES,
    CamxferSettings,
    camxfer_contender,
    camxfer_triggered_contender,
)
from bench.dataset import Dataset
from bench.measure import Contender, Measurement, measure_rounds
from bench.netns import Link

KEYS = ("iperf3", "cp", "tar", "rsync", "seed", "sendfile", "camxfer", "triggered")
ALIASES = {"nc": "tar", "tar|nc": "tar", "tarnc": "tar", "ceiling": "iperf3"}


def parse_only(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset(KEYS)
    keys = set()
    for raw in text.split(","):
        key = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if key not in KEYS:
            raise ValueError(f"--only: unknown name {raw!r}; names are {', '.join(KEYS)}")
        keys.add(key)
    return frozenset(keys)


@dataclass
class SuiteResult:
    rows: list[Measurement] = field(default_factory=list)
    search: list[Measurement] = field(default_factory=list)  # every tuned candidate
    tuned: CamxferSettings | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "measurements": [m.to_json() for m in self.rows],
            "tuned_search": [m.to_json() for m in self.search],
            "tuned_flags": self.tuned.flags if self.tuned else None,
        }


def _progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def run_suite(
    dataset: Dataset,
    link: Link,
    *,
    reps: int,
    workdir: Path,
    only: frozenset[str],
    quick: bool,
    iperf_seconds: float | None,
    cp_rows: list[Measurement] | None = None,
    compare_src: Path | None = None,
) -> SuiteResult:
    """Measure every selected contender; `cp_rows` reuses a local cp measured for another link.

    camxfer "tuned": every candidate of TUNED_CANDIDATES is measured in the same rounds as
    everything else, and the one with the best median - or the defaults, if none beats them -
    is reported as tuned (all candidates are kept in `search`). Picking the best of several
    medians favours a lucky candidate a little.
    """
    result = SuiteResult()
    if "iperf3" in only and iperf_seconds:
        _progress(f"{link.name}: iperf3")
        result.rows.append(ceiling.measure_iperf3(link, iperf_seconds, reps, workdir))
    contenders: list[Contender] = []
    if "cp" in only and not cp_rows:
        contenders += [ceiling.CP, ceiling.CP_SYNC]
    wanted = [
        ("tar", peers.TAR_NC),
        ("tar", peers.TAR_NC_SYNC),
        ("rsync", peers.RSYNC),
        ("rsync", peers.RSYNC_FSYNC),
        ("seed", baselines.SEED),
        ("sendfile", baselines.SENDFILE_FSYNC),
        ("sendfile", baselines.SENDFILE),
    ]
    contenders += [contender for key, contender in wanted if key in only]
    if "triggered" in only and link.name == "loopback":  # its trigger client runs here
        contenders.append(camxfer_triggered_contender(DEFAULT))
    candidates: list[CamxferSettings] = []
    if "camxfer" in only and compare_src is not None:
        contenders.append(camxfer_contender(DEFAULT, f"default, {compare_src.name}", compare_src))
    if "camxfer" in only:
        contenders.append(camxfer_contender(DEFAULT, "default"))
        candidates = [QUICK_TUNED] if quick else list(TUNED_CANDIDATES)
        contenders += [camxfer_contender(c, "tuned") for c in candidates]
    rows = measure_rounds(contenders, dataset, link, reps, workdir, progress=_progress)
    if "cp" in only and cp_rows:
        result.rows.extend(cp_rows)
    result.rows += rows[: len(rows) - len(candidates)]
    if candidates:
        searched = list(zip(candidates, rows[len(rows) - len(candidates) :], strict=True))
        result.search = [m for _settings, m in searched]
        default_row = rows[len(rows) - len(candidates) - 1]
        pool = [pair for pair in [(DEFAULT, default_row), *searched] if pair[1].verified]
        best_settings, best = max(pool or searched, key=lambda pair: pair[1].mb_s)
        if best is default_row:  # no candidate beat the defaults: say so, with their figure
            best = replace(default_row, name="camxfer (tuned)", flags="= the defaults")
        result.tuned = best_settings
        result.rows.append(best)
    return result
