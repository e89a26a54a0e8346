"""The scaling mode: camxfer's MB/s against --conns, --workers and file size, with PNG plots.

Responsible for: three sweeps, one factor at a time from the defaults (the receiver's own
worker count, sender --conns 8 --window 32), each measured round-robin on loopback; the
file-size sweep keeps the total bytes about constant and runs the sendfile+recv_into fsync
baseline beside camxfer; and the plots in bench/results/scaling-*.png (skipped, with a note, without
matplotlib: `bench/setup.sh` installs it).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import baselines, report
from bench.camxfer_runs import DEFAULT, camxfer_contender
from bench.dataset import KIB, MIB, make_dataset
from bench.measure import Measurement, measure_rounds
from bench.netns import LOOPBACK
from bench.report import Target

CONNS = (1, 2, 4, 8, 16)
WORKERS = (1, 2, 4)
FILE_SIZES = (100 * KIB, 1 * MIB, 4 * MIB, 8 * MIB)


def _progress(text: str) -> None:
    print(f"  .. scaling {text}", file=sys.stderr, flush=True)


def run(
    workdir: Path, *, reps: int, quick: bool, results: Path
) -> tuple[dict[str, Any], list[Target]]:
    total = (48 if quick else 384) * MIB
    data = make_dataset(workdir / "scaling" / "mixed", total // (3 * MIB // 2), MIB, 2 * MIB)
    out: dict[str, Any] = {"dataset": data.description, "fixed": DEFAULT.flags}

    conns = [camxfer_contender(replace(DEFAULT, conns=n), f"--conns {n}") for n in CONNS]
    conns_rows = measure_rounds(conns, data, LOOPBACK, reps, workdir, progress=_progress)
    workers = [camxfer_contender(replace(DEFAULT, workers=n), f"--workers {n}") for n in WORKERS]
    workers_rows = measure_rounds(workers, data, LOOPBACK, reps, workdir, progress=_progress)
    size_rows: dict[str, list[Measurement]] = {"camxfer (default)": [], "sendfile fsync": []}
    for size in FILE_SIZES:
        sized = make_dataset(workdir / "scaling" / "sized", max(total // size, 8), size, size)
        rows = measure_rounds(
            [camxfer_contender(DEFAULT, "default"), baselines.SENDFILE_FSYNC],
            sized,
            LOOPBACK,
            reps,
            workdir,
            progress=_progress,
        )
        for series, m in zip(size_rows, rows, strict=True):
            m.name = f"{series} {_size_label(size)}"
            size_rows[series].append(m)

    title = f"== scaling, loopback: {data.description}, one factor at a time from the defaults"
    print(report.table(title + " - connections", conns_rows))
    print(report.table("   receiver workers", workers_rows))
    all_sizes = [m for rows in size_rows.values() for m in rows]
    print(report.table("   file size (about the same total bytes)", all_sizes))
    out["conns"] = [{"conns": n, **m.to_json()} for n, m in zip(CONNS, conns_rows, strict=True)]
    out["workers"] = [
        {"workers": n, **m.to_json()} for n, m in zip(WORKERS, workers_rows, strict=True)
    ]
    out["file_size"] = {
        series: [{"size": s, **m.to_json()} for s, m in zip(FILE_SIZES, ms, strict=True)]
        for series, ms in size_rows.items()
    }
    out["plots"] = _plots(results, conns_rows, workers_rows, size_rows)
    print("plots: " + (", ".join(out["plots"]) or "none (pip install matplotlib)") + "\n")
    return out, []


def _size_label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def _plots(
    results: Path,
    conns_rows: list[Measurement],
    workers_rows: list[Measurement],
    size_rows: dict[str, list[Measurement]],
) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    kib = [s // KIB for s in FILE_SIZES]
    sweeps = [
        ("scaling-conns.png", "sender --conns", CONNS, {"camxfer": conns_rows}, False),
        ("scaling-workers.png", "receiver --workers", WORKERS, {"camxfer": workers_rows}, False),
        ("scaling-filesize.png", "file size (KiB)", kib, size_rows, True),
    ]
    for name, xlabel, xs, series, logx in sweeps:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, rows in series.items():
            ax.plot(list(xs), [m.mb_s for m in rows], marker="o", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("MB/s (median, loopback)")
        ax.set_xscale("log", base=2 if not logx else 10)
        ax.set_xticks(list(xs), [str(x) for x in xs])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"camxfer MB/s against {xlabel}")
        fig.tight_layout()
        fig.savefig(results / name, dpi=100)
        plt.close(fig)
        made.append(str(results / name))
    return made
