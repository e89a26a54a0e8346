"""A sender run: the planner finds complete files, connection workers push them, results return.

The calling thread runs the planner (scan, wait for inotify or the poll interval, repeat) and
applies the workers' results to it and to the report. It stops when the planner has nothing
more to give (--once backlog or --max-files reached, all acknowledged), at the timeout, or when
`stop` is set (graceful: in-flight files finish; `abandon` gives up on them at once).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from camxfer.errors import TransferError, UsageError
from camxfer.send.connection import Connection
from camxfer.send.observe import SendObserver, metrics_observer, progress_of
from camxfer.send.options import SendOptions
from camxfer.send.report import MAX_LISTED, SendReport
from camxfer.send.scan import Planner, ReadyFile, cleanup_part_files
from camxfer.send.watch import FolderWatcher
from camxfer.send.worker import ConnectionWorker, Result, WorkQueue

if TYPE_CHECKING:
    from typing import TypedDict, Unpack

    class SendRunOptions(TypedDict, total=False):
        """SendRun's keyword arguments, for `run_send`."""

        stop: threading.Event | None
        abandon: threading.Event | None
        progress: Callable[[SendReport], None] | None
        progress_interval: float
        observer: SendObserver | None
        observer_interval: float
        keep_connection: bool


log = logging.getLogger("camxfer.send")

STOP_GRACE_S = 10.0  # after a stop request, how long in-flight files may take to be acked


class SendRun:
    def __init__(
        self,
        opts: SendOptions,
        *,
        stop: threading.Event | None = None,
        abandon: threading.Event | None = None,
        progress: Callable[[SendReport], None] | None = None,
        progress_interval: float = 1.0,
        observer: SendObserver | None = None,
        observer_interval: float = 0.5,
        keep_connection: bool = False,
    ) -> None:
        if not opts.src_dir.is_dir():
            raise UsageError(f"source folder {opts.src_dir} does not exist or is not a folder")
        self.opts = opts
        self.stop = stop or threading.Event()
        self.abandon = abandon or threading.Event()
        self.progress = progress
        self.progress_interval = progress_interval
        self.report = SendReport()
        self.results: queue.Queue[Result] = queue.Queue()
        self.fatal: str | None = None
        self._planner: Planner | None = None
        self._outstanding: dict[str, ReadyFile] = {}  # handed to workers, not final yet
        # Progress displays and metrics: fed from the planner thread, never per chunk.
        self._observers = [o for o in (observer, metrics_observer(opts)) if o is not None]
        self.observer_interval = observer_interval
        self._work: WorkQueue | None = None
        self._last_tick = 0.0
        # Set once the planner's first scan is done (or the run ends): until then only the
        # first connection connects early (see _start_workers).
        self._first_scan_done = threading.Event()
        # name on the receiver -> (size, XXH3-128) of every file acknowledged: the manifest
        self.landed_files: dict[str, tuple[int, bytes]] = {}
        # With keep_connection: one worker's connection, still open at the end (no END sent
        # yet) for the manifest; the caller owns it and must close it.
        self.keep_connection = keep_connection
        self.kept_connection: Connection | None = None

    def run(self) -> SendReport:
        opts = self.opts
        if opts.cleanup_part_files:
            removed = cleanup_part_files(opts.src_dir)
            if removed:
                log.info("removed %d stale .part files under %s", removed, opts.src_dir)
        watcher = (
            FolderWatcher.create(opts.src_dir, recursive=opts.preserve_structure)
            if opts.use_inotify
            else None
        )
        planner = Planner(opts, watcher)
        self._planner = planner
        deadline = time.monotonic() + opts.timeout if opts.timeout else None
        stop_taking = threading.Event()
        try:
            if opts.once:
                work, workers = self._start_once(planner, deadline, stop_taking)
            else:
                work = WorkQueue()
                workers = self._start_workers(work, stop_taking, announce=False)
            self._work = work
            try:
                self._main_loop(planner, watcher, work, deadline)
            except BaseException:
                # A failure in the planner's loop (a bug, a folder that cannot be read) must
                # not leave the workers sending, with their connections open, after the run:
                # in a trigger server they would outlive the event.
                self.abandon.set()
                stop_taking.set()
                work.close()
                raise
            finally:
                self._first_scan_done.set()
            work.close()
            if self.stop.is_set() or self._timed_out(deadline):
                stop_taking.set()  # in-flight files finish; queued ones are abandoned
            self._join(workers)
            self.kept_connection = next((w.kept for w in workers if w.kept is not None), None)
        finally:
            if watcher:
                watcher.close_in_background()
        self._drain_results()
        for worker in workers:
            for item in worker.abandoned:
                self._outstanding.pop(item.rel, None)
                self.report.abandoned.append(item.rel)
        self.report.abandoned.extend(self._outstanding)
        self._account_unsent(planner)
        self.report.ended = time.monotonic()
        self._tick(ended=True)
        if self.fatal:
            raise TransferError(self.fatal)
        return self.report

    # --- start-up ------------------------------------------------------------------------------
    def _start_workers(
        self,
        work: WorkQueue,
        stop_taking: threading.Event,
        *,
        announce: bool,
        count: int | None = None,
    ) -> list[ConnectionWorker]:
        if count is None:  # never more connections than the run has files to send
            count = min(self.opts.conns, self.opts.max_files or self.opts.conns)
        workers = [
            ConnectionWorker(
                i,
                self.opts,
                work,
                self.results,
                announce_counts=announce,
                stop_taking=stop_taking,
                abandon=self.abandon,
                # Without counts to announce (not --once): connect at once, while the
                # planner scans, so the first file finds its connection open. The others
                # connect once that scan is done: at a trigger, six cameras' 48 handshakes
                # shared the GIL with the scans, and the first file waited for all of them.
                connect_early=not announce,
                connect_after=self._first_scan_done if i else None,
            )
            for i in range(count)
        ]
        if workers and self.keep_connection:
            workers[0].keep_open = True
        for worker in workers:
            worker.start()
        return workers

    def _start_once(
        self, planner: Planner, deadline: float | None, stop_taking: threading.Event
    ) -> tuple[WorkQueue, list[ConnectionWorker]]:
        """--once: wait until the whole backlog is judged complete, then give each connection
        its share, so every connection can announce how many files it will send."""
        ready: list[ReadyFile] = []
        # A backlog file that stays incomplete this long (a stuck writer) is given up on,
        # so --once always ends.
        patience = max(self.opts.frame_timeout, 2 * self.opts.settle_s, 1.0)
        last_progress = time.monotonic()
        while not self.stop.is_set() and not self._timed_out(deadline):
            new = planner.scan()
            ready.extend(new)
            self._report_planner(planner)
            if planner.backlog is not None and len(planner.backlog) <= len(ready):
                break
            now = time.monotonic()
            if new:
                last_progress = now
            elif now - last_progress > patience:
                for rel in planner.give_up_incomplete_backlog({item.rel for item in ready}):
                    self.report.add_problem(
                        "failed", rel, f"still being written after {patience:g} s"
                    )
                break
            time.sleep(min(self.opts.stable_s, self.opts.file_wait_ms / 1000) or 0.001)
        lanes = max(1, min(self.opts.conns, len(ready)))
        work = WorkQueue(lanes)
        for index, item in enumerate(ready):
            self._outstanding[item.rel] = item
            work.put(item, index % lanes)
        # Workers beyond the number of lanes share a lane's items (index % lanes) but must
        # not announce counts for them: start exactly one worker per lane.
        workers = self._start_workers(work, stop_taking, announce=True, count=lanes)
        return work, workers

    # --- the loop ------------------------------------------------------------------------------
    def _main_loop(
        self,
        planner: Planner,
        watcher: FolderWatcher | None,
        work: WorkQueue,
        deadline: float | None,
    ) -> None:
        last_progress = time.monotonic()
        last_listing = 0.0
        poll_s = self.opts.poll_ms / 1000
        woke = True
        while True:
            self._drain_results()
            if self.fatal or self.stop.is_set() or self._timed_out(deadline):
                return
            if planner.finished and not self._outstanding:
                return
            now = time.monotonic()
            due = woke or planner.waiting_for_completion or now - last_listing >= poll_s
            # --once: only files sent back for a recheck, or not yet complete, come out of the
            # planner here; while every backlog file is in flight a scan (O(backlog)) is idle.
            if due and not planner.backlog_handed_out:
                for item in planner.scan():
                    self._outstanding[item.rel] = item
                    work.put(item)
                last_listing = now
                self._first_scan_done.set()
                self._report_planner(planner)
            if self.progress and now - last_progress >= self.progress_interval:
                self.progress(self.report)
                last_progress = now
            if self._observers and now - self._last_tick >= self.observer_interval:
                self._tick()
            woke = self._wait(planner, watcher)

    def _wait(self, planner: Planner, watcher: FolderWatcher | None) -> bool:
        """Sleep until something may have changed; True when the folder changed."""
        opts = self.opts
        wait_s = opts.poll_ms / 1000
        if planner.waiting_for_completion:
            wait_s = min(wait_s, max(opts.stable_s, 0.001), opts.file_wait_ms / 1000)
        if self._outstanding:
            wait_s = min(wait_s, 0.02)  # results to apply soon
            last_ones = len(self._outstanding) <= opts.conns
            ending = opts.once or planner.all_handed_out
            if last_ones and ending and not planner.waiting_for_completion:
                # --once, or every asked file handed out, and only the last ones in flight:
                # the folder matters no more, only the workers' results do. Waking at each
                # ends the run (and closes the queue) as soon as the last file is
                # acknowledged, not up to 20 ms later; before those, results are applied in
                # batches, without a wake-up each.
                with contextlib.suppress(queue.Empty):
                    self._apply(self.results.get(timeout=wait_s))
                return False
        if watcher is not None:
            return watcher.poll(wait_s * 1000)
        # No watcher: check cheaply, every --file-wait-ms, whether the next frame appeared.
        expected = planner.expected_next_path()
        end = time.monotonic() + wait_s
        step = max(opts.file_wait_ms / 1000, 0.001)
        while time.monotonic() < end and not self.stop.is_set():
            if expected is not None and expected.exists():
                return True
            time.sleep(min(step, max(end - time.monotonic(), 0)))
        return False

    def _tick(self, *, ended: bool = False) -> None:
        """Show every observer where the run stands (planner thread only)."""
        self._last_tick = time.monotonic()
        if not self._observers:
            return
        planner = self._planner
        expected: int | None = self.opts.max_files or None
        if expected is None and planner is not None and planner.backlog is not None:
            # The backlog shrinks as files become final: add back what already ended.
            expected = len(planner.backlog) + self.report.files + self.report.count("failed")
        queued = self._work.queued() if self._work is not None and not ended else 0
        progress = progress_of(
            self.report,
            queued=queued,
            outstanding=0 if ended else len(self._outstanding),
            expected=expected,
            ended=ended,
        )
        for observer in self._observers:
            observer.tick(progress, self.report)

    def _timed_out(self, deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def _join(self, workers: list[ConnectionWorker]) -> None:
        grace_end = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            while worker.is_alive():
                worker.join(0.1)
                self._drain_results()
                if time.monotonic() > grace_end and (self.stop.is_set() or self.fatal):
                    self.abandon.set()
        self._drain_results()

    # --- results -------------------------------------------------------------------------------
    def _drain_results(self) -> None:
        while True:
            try:
                result = self.results.get_nowait()
            except queue.Empty:
                return
            self._apply(result)

    def _apply(self, result: Result) -> None:
        planner = self._planner
        item = result.item
        if result.kind == "fatal":
            self.fatal = self.fatal or result.reason
            self.stop.set()
            return
        if item is None:
            return
        if result.kind == "retry":
            self.report.retry()
            return
        if result.kind == "recheck":
            self.report.retry()
            self._outstanding.pop(item.rel, None)
            item.rechecks += 1
            if item.rechecks > 20:
                self._final(item)
                self.report.add_problem("failed", item.rel, f"kept changing: {result.reason}")
                return
            log.info("%s: %s; checking again", item.rel, result.reason)
            if planner:
                planner.recheck(item)
            return
        self._final(item)
        if result.kind == "landed":
            latency = result.at - item.ready_mono
            self.report.landed(item.rel, result.size, latency, result.duplicate)
            self.landed_files[item.wire_name] = (result.size, result.checksum)
            log.debug(
                "landed %s (%d bytes, %.1f ms%s)",
                item.rel,
                result.size,
                latency * 1000,
                ", already there" if result.duplicate else "",
                extra={"event": "file_sent", "file": item.rel, "bytes": result.size},
            )
        else:
            log.warning(
                "%s %s: %s",
                result.kind,
                item.rel,
                result.reason,
                extra={"event": f"file_{result.kind}", "file": item.rel, "reason": result.reason},
            )
            self.report.add_problem(result.kind, item.rel, result.reason)

    def _final(self, item: ReadyFile) -> None:
        self._outstanding.pop(item.rel, None)
        if self._planner:
            self._planner.mark_final(item)

    def _report_planner(self, planner: Planner) -> None:
        while planner.vanished:
            rel = planner.vanished.pop(0)
            self.report.add_problem("vanished", rel, "deleted before it could be sent")

    def _account_unsent(self, planner: Planner) -> None:
        """At the end, frames of the asked range that were never sent count as missing."""
        self._report_planner(planner)
        self.report.missing_count = planner.missing.count
        self.report.missing = list(planner.missing.names)
        if planner.backlog:
            for rel in sorted(planner.backlog - set(self.report.abandoned)):
                self.report.add_problem("vanished", rel, "never judged complete before the end")
        for rel in sorted(planner.rechecks_pending - (planner.backlog or set())):
            self.report.add_problem(
                "failed", rel, "changed while being read; not sent again before the end"
            )
        end, template, start = planner.range_end, planner.template, planner.next_unresolved
        if template is not None and end is not None and start is not None:
            # Counted from the files the run accounted for, not number by number: a range of
            # --max-files 1000000000 took a quarter of an hour of CPU at the end of the run.
            ended = {p.name for p in self.report.failed + self.report.vanished}
            ended.update(self.report.landed_names, self.report.abandoned)
            accounted = {
                number
                for name in ended
                if (number := template.number_of(name)) is not None
                and start <= number < end
                and template.name_of(number) == name
            }
            self.report.missing_count += end - start - len(accounted)
            number = start
            while number < end and len(self.report.missing) < MAX_LISTED:
                if number not in accounted:
                    self.report.missing.append(template.name_of(number))
                number += 1


def run_send(opts: SendOptions, **kwargs: Unpack[SendRunOptions]) -> SendReport:
    return SendRun(opts, **kwargs).run()
