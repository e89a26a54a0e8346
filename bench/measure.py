"""Measuring one way of moving a data set: run it `reps` times over a link, verify, keep figures.

Responsible for: the repetition loop (fresh destination and port each time; start the
receiver, wait until it listens, start the clock, start the sender, stop the clock when the
sender - and, for receivers that exit at the end, the receiver - has finished), checking the
copy file by file, and the `Measurement` every mode and the report share.
Not responsible for: the command lines (ceiling/peers/baselines/camxfer_runs build `Plan`s).

The clock includes process start-up: a contender is timed as the command a user would run.
A run that fails or does not verify ends the contender's measurement with its reason.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.dataset import Dataset, verify_copy
from bench.destinations import fresh_dest
from bench.netns import Link
from bench.procs import BenchError, Exit, Proc, free_port, tree_cpu_seconds, wait_listening


@dataclass(frozen=True)
class RepContext:
    """What a plan needs for one repetition."""

    src: Path
    dest: Path  # an empty folder for this repetition
    port: int
    host: str  # the receiver's address on the link
    workdir: Path
    count: int  # files in the data set


@dataclass(frozen=True)
class Plan:
    sender: list[str]
    landed: Path  # where the data set's files must be after the run
    receiver: list[str] | None = None
    receiver_exits: bool = False  # the receiver ends by itself once everything landed
    # Looks at the sender's stdout: (error or None, extra figures for the report).
    read_stdout: Callable[[str], tuple[str | None, dict[str, float]]] | None = None
    # A warm service instead of a sender command: `service` starts with the receiver, before
    # the clock, and listens on `service_port`; the clock then times `trigger`, run in this
    # process, which starts the transfer and returns when it has ended (or an error).
    service: list[str] | None = None
    service_port: int | None = None
    trigger: Callable[[], str | None] | None = None


@dataclass(frozen=True)
class Contender:
    key: str  # what --only names
    name: str  # the row label
    group: str  # ceiling | peer | baseline | camxfer
    plan: Callable[[RepContext], Plan]
    flags: str = ""
    over_link: bool = True  # False: a local copy (cp), the same whatever the link
    env: dict[str, str] | None = None  # extra environment for its processes


@dataclass
class Measurement:
    key: str
    name: str
    group: str
    link: str
    flags: str = ""
    files: int = 0
    seconds: list[float] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # sender + receiver, user + system
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.error is None and bool(self.seconds)

    @property
    def mb_s(self) -> float:
        """Median over repetitions of bytes / seconds, in MB/s (10^6 bytes)."""
        if not self.verified:
            return 0.0
        rates = [b / s / 1e6 for b, s in zip(self.bytes, self.seconds, strict=True)]
        return statistics.median(rates)

    @property
    def files_s(self) -> float:
        if not self.verified or not self.files:
            return 0.0
        return self.files / statistics.median(self.seconds)

    @property
    def cpu_s_per_gb(self) -> float:
        if not self.verified or not self.cpu_s:
            return 0.0
        return statistics.median(c / (b / 1e9) for c, b in zip(self.cpu_s, self.bytes, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "group": self.group,
            "link": self.link,
            "flags": self.flags,
            "verified": self.verified,
            "error": self.error,
            "files": self.files,
            "mb_per_s": round(self.mb_s, 1),
            "files_per_s": round(self.files_s, 1),
            "cpu_s_per_gb": round(self.cpu_s_per_gb, 3),
            "seconds": [round(s, 4) for s in self.seconds],
            "bytes": self.bytes,
            "cpu_s": [round(c, 3) for c in self.cpu_s],
            "extra": self.extra,
        }


def measure_rounds(
    contenders: list[Contender],
    dataset: Dataset,
    link: Link,
    reps: int,
    workdir: Path,
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float = 180.0,
) -> list[Measurement]:
    """Measure every contender `reps` times, round-robin.

    Round-robin (A B C, A B C, ...) rather than A A A, B B B: the machine is shared, and
    interleaving spreads a burst of someone else's load over every contender instead of
    handing it to one. A contender's first failure ends its measurement, with the reason.
    """
    results = [
        Measurement(
            c.key,
            c.name,
            c.group,
            link.name if c.over_link else "local",
            c.flags,
            files=dataset.count,
        )
        for c in contenders
    ]
    extras: list[dict[str, list[float]]] = [{} for _ in contenders]
    for rep in range(reps):
        for contender, result, extra_lists in zip(contenders, results, extras, strict=True):
            if result.error is not None:
                continue
            if progress is not None:
                progress(f"{link.name}: {contender.name}, repetition {rep + 1} of {reps}")
            try:
                seconds, cpu, extra = _one_rep(contender, dataset, link, rep, workdir, timeout)
            except (BenchError, TimeoutError, OSError) as exc:
                result.error = str(exc)
                continue
            result.seconds.append(seconds)
            result.bytes.append(dataset.total_bytes)
            result.cpu_s.append(cpu)
            for key, value in extra.items():
                extra_lists.setdefault(key, []).append(value)
    for result, extra_lists in zip(results, extras, strict=True):
        result.extra = {key: statistics.median(values) for key, values in extra_lists.items()}
    return results


def measure(
    contender: Contender, dataset: Dataset, link: Link, reps: int, workdir: Path
) -> Measurement:
    """One contender, `reps` repetitions."""
    return measure_rounds([contender], dataset, link, reps, workdir)[0]


def _one_rep(
    contender: Contender, dataset: Dataset, link: Link, rep: int, workdir: Path, timeout: float
) -> tuple[float, float, dict[str, float]]:
    dest = fresh_dest(workdir, f"{contender.key}-{rep}")
    ctx = RepContext(dataset.root, dest, free_port(), link.recv_host, workdir, dataset.count)
    plan = contender.plan(ctx)
    logs = workdir / "logs"
    env = {**os.environ, **contender.env} if contender.env else None
    if plan.trigger is not None:
        seconds, cpu = _time_trigger(contender, plan, ctx, link, rep, logs, env)
        _verify_and_clear(dataset, plan.landed, dest)
        return seconds, cpu, {}
    on_sender = link.on_sender if contender.over_link else list
    receiver = sender = None
    try:
        if plan.receiver is not None:
            receiver = Proc(
                link.on_receiver(plan.receiver), logs, f"{contender.key}-recv{rep}", env=env
            )
            wait_listening(ctx.port, receiver, link.recv_prefix)
        began = time.perf_counter()
        sender = Proc(on_sender(plan.sender), logs, f"{contender.key}-send{rep}", env=env)
        sent = sender.wait(timeout)
        received: Exit | None = None
        if receiver is not None and plan.receiver_exits and sent.returncode == 0:
            received = receiver.wait(max(timeout - (time.perf_counter() - began), 1.0))
        seconds = time.perf_counter() - began
        if receiver is not None and received is None:
            received = receiver.stop()
    finally:
        for proc in (sender, receiver):
            if proc is not None:
                proc.stop()
    if sent.returncode != 0:
        raise BenchError(f"sender exited with {sent.returncode}: {sender.stderr_tail()}")
    if plan.receiver_exits and received is not None and received.returncode != 0:
        raise BenchError(f"receiver exited with {received.returncode}: {receiver.stderr_tail()}")
    extra: dict[str, float] = {}
    if plan.read_stdout is not None:
        error, extra = plan.read_stdout(sender.stdout())
        if error:
            raise BenchError(error)
    _verify_and_clear(dataset, plan.landed, dest)
    cpu = sent.cpu_s + (received.cpu_s if received is not None else 0.0)
    return seconds, cpu, extra


def _time_trigger(
    contender: Contender,
    plan: Plan,
    ctx: RepContext,
    link: Link,
    rep: int,
    logs: Path,
    env: dict[str, str] | None,
) -> tuple[float, float]:
    """A warm service's repetition: receiver and service start before the clock; the clock
    times the trigger. Returns (seconds, CPU both process trees used meanwhile)."""
    assert plan.trigger is not None and plan.service is not None and plan.receiver is not None
    assert plan.service_port is not None
    receiver = service = None
    try:
        receiver = Proc(
            link.on_receiver(plan.receiver), logs, f"{contender.key}-recv{rep}", env=env
        )
        wait_listening(ctx.port, receiver, link.recv_prefix)
        service = Proc(link.on_sender(plan.service), logs, f"{contender.key}-svc{rep}", env=env)
        wait_listening(plan.service_port, service)
        cpu_before = tree_cpu_seconds(receiver.pid) + tree_cpu_seconds(service.pid)
        began = time.perf_counter()
        error = plan.trigger()
        seconds = time.perf_counter() - began
        cpu = tree_cpu_seconds(receiver.pid) + tree_cpu_seconds(service.pid) - cpu_before
    finally:
        for proc in (service, receiver):
            if proc is not None:
                proc.stop()
    if error:
        raise BenchError(error)
    return seconds, cpu


def _verify_and_clear(dataset: Dataset, landed: Path, dest: Path) -> None:
    """Check the copy file by file, then remove it and let its writeback finish."""
    error = verify_copy(dataset, landed)
    if error:
        raise BenchError(f"copy does not verify: {error}")
    shutil.rmtree(dest, ignore_errors=True)
    os.sync()  # leave no writeback from this run to slow the next one down
