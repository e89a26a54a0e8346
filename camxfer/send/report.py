"""What a sender run did: counters, per-file outcomes and latencies, and the JSON stats object."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

MAX_LISTED = 1000  # names listed per outcome kind; counts stay exact


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Problem(NamedTuple):
    name: str
    reason: str


class SendReport:
    """What one run did so far; the sender's threads add to it under its lock."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.ended: float | None = None
        self.files = 0
        self.bytes = 0
        self.duplicates = 0
        self.retries = 0
        self.failed: list[Problem] = []
        self.vanished: list[Problem] = []
        self.missing_count = 0
        self.missing: list[str] = []
        self.abandoned: list[str] = []
        self.latencies: list[float] = []  # ready -> acked, seconds
        self.landed_names: list[str] = []
        self._overflow: dict[str, int] = {}  # problems not listed
        self._lock = threading.Lock()

    def landed(self, name: str, size: int, latency: float, duplicate: bool) -> None:
        with self._lock:
            self.files += 1
            self.bytes += size
            self.duplicates += duplicate
            self.latencies.append(latency)
            if len(self.landed_names) < 100_000:
                self.landed_names.append(name)

    def add_problem(self, kind: str, name: str, reason: str) -> None:
        with self._lock:
            target = self.failed if kind == "failed" else self.vanished
            if len(target) < MAX_LISTED:
                target.append(Problem(name, reason))
            else:
                self._overflow[kind] = self._overflow.get(kind, 0) + 1

    def retry(self) -> None:
        with self._lock:
            self.retries += 1

    def count(self, kind: str) -> int:
        listed = {"failed": self.failed, "vanished": self.vanished}[kind]
        return len(listed) + self._overflow.get(kind, 0)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    @property
    def ok(self) -> bool:
        return not (
            self.count("failed") or self.count("vanished") or self.missing_count or self.abandoned
        )

    def to_json(self) -> dict:
        seconds = max(self.seconds, 1e-9)
        lat = sorted(self.latencies)
        return {
            "ok": self.ok,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "mb_per_s": round(self.bytes / seconds / 1e6, 2),
            "files_per_s": round(self.files / seconds, 2),
            "duplicates": self.duplicates,
            "retries": self.retries,
            "failed": self.count("failed"),
            "vanished": self.count("vanished"),
            "missing": self.missing_count,
            "abandoned": len(self.abandoned),
            "skipped": [
                *({"name": p.name, "reason": f"failed: {p.reason}"} for p in self.failed),
                *({"name": p.name, "reason": f"vanished: {p.reason}"} for p in self.vanished),
                *({"name": n, "reason": "missing: never appeared"} for n in self.missing),
                *(
                    {"name": n, "reason": "abandoned: stopped before it was acknowledged"}
                    for n in self.abandoned[:MAX_LISTED]  # the count above is exact
                ),
            ],
            "latency_ms": {
                "p50": round(percentile(lat, 0.50) * 1000, 2),
                "p90": round(percentile(lat, 0.90) * 1000, 2),
                "p99": round(percentile(lat, 0.99) * 1000, 2),
                "max": round((lat[-1] if lat else 0.0) * 1000, 2),
            },
        }

    def summary_line(self) -> str:
        data = self.to_json()
        text = (
            f"sent {data['files']} files, {data['bytes'] / 1e6:.1f} MB in {data['seconds']:.2f} s "
            f"({data['mb_per_s']:.1f} MB/s, {data['files_per_s']:.0f} files/s), "
            f"retries {data['retries']}"
        )
        problems = [
            f"{data[k]} {k}" for k in ("failed", "vanished", "missing", "abandoned") if data[k]
        ]
        if problems:
            text += "; " + ", ".join(problems)
        return text
