"""Which files to send, in what order, and when: the scanning half of the sender.

The planner lists the source folder, keeps files that match the pattern and lie after the
start name, and hands out those that are complete (`completion`) in name order. It never
reads file contents and never touches sockets; the sender feeds back what happened to each
file it handed out.

Two ways of counting, chosen from the names (the start name's, or else the first listing's:
the number pattern at least half the names share, from its lowest number):
- numbered frames (`frame_camera01_000046836.jpg`, one camera per folder): the run covers
  frame numbers first .. first+max_files-1. A number that is absent while later frames exist
  is a gap: it is waited for up to `frame_timeout`, then reported missing. Complete frames
  after a gap are not held back by it. Names without that pattern are not sent.
- other names (or `--preserve-structure`): strictly in name order (with
  `--preserve-structure`, within each folder); `max_files` counts files.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from camxfer.frames import NumberedName, number_between, split_number
from camxfer.send.completion import Observation, WriteState, is_complete, observe
from camxfer.send.listing import FolderIndex, NumberIndex
from camxfer.send.options import SendOptions
from camxfer.send.watch import FolderWatcher

log = logging.getLogger("camxfer.send")

MAX_REPORTED_NAMES = 1000  # missing names listed in a report; the count is always exact
# With inotify, the folder is read in full this often, in case the watcher missed something;
# in between, the watcher's record of names that came and went updates the listing.
FULL_LISTING_S = 1.0


class ReadyFile:
    """A complete file handed to the sender."""

    __slots__ = (
        "attempts",
        "inode",
        "not_before",
        "number",
        "path",
        "ready_mono",
        "rechecks",
        "rel",
        "wire_name",
    )

    def __init__(
        self,
        rel: str,  # path relative to the source folder
        path: str,
        wire_name: str,  # name sent to the receiver (relative path with --preserve-structure)
        number: int | None,
        inode: int,
        ready_mono: float,  # when it was judged complete (monotonic)
    ) -> None:
        self.rel = rel
        self.path = path
        self.wire_name = wire_name
        self.number = number
        self.inode = inode
        self.ready_mono = ready_mono
        self.attempts = 0
        self.rechecks = 0
        self.not_before = 0.0  # monotonic time before which a retry must not start

    def __repr__(self) -> str:
        return f"ReadyFile({self.rel!r}, attempts={self.attempts})"


class Listing:
    """One listing of the source folder: (relative path, absolute path) pairs in name order,
    built only if a scan asks for them (a numbered scan reads the `NumberIndex` instead)."""

    def __init__(self, source: list[tuple[str, str]] | FolderIndex) -> None:
        self._source = source

    @property
    def entries(self) -> list[tuple[str, str]]:
        return self._source.entries if isinstance(self._source, FolderIndex) else self._source


class _Template:
    """The numbered name pattern of the frames a scan asks for."""

    def __init__(self, prefix: str, suffix: str, width: int) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.width = width
        self._numbers: dict[str, int | None] = {}

    def number_of(self, name: str) -> int | None:
        # Every scan asks for every listed name again: parse each name once. (A test, not a
        # KeyError caught: a trigger's first listing misses on every name of the ring.)
        if name in self._numbers:
            return self._numbers[name]
        number = number_between(name, self.prefix, self.suffix)
        if len(self._numbers) > 100_000:
            self._numbers.clear()
        self._numbers[name] = number
        return number

    def name_of(self, number: int) -> str:
        return NumberedName(self.prefix, number, self.width, self.suffix).with_number(number)


class MissingReport:
    def __init__(self) -> None:
        self.count = 0
        self.names: list[str] = []

    def add(self, names: list[str]) -> None:
        self.count += len(names)
        room = MAX_REPORTED_NAMES - len(self.names)
        self.names.extend(names[: max(room, 0)])


class Planner:
    def __init__(
        self,
        opts: SendOptions,
        watcher: FolderWatcher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.opts = opts
        self.root = opts.src_dir
        self.watcher = watcher
        self.clock = clock
        self.wall = wall
        self.missing = MissingReport()
        # Files gone before they were sent: --once backlog files, and files sent back for a
        # recheck (name mode)
        self.vanished: list[str] = []
        self._first_obs: dict[str, Observation] = {}
        # numbered mode
        self.template: _Template | None = None
        self.first: int | None = None
        self._inflight_numbers: set[int] = set()
        self._final_above: set[int] = set()  # final numbers >= next_unresolved
        self.next_unresolved: int | None = None
        self._gap_since: dict[int, float] = {}
        self.max_seen: int | None = None
        # name mode
        self._high_water: dict[str, str] = {}  # per folder: the last name handed out
        self._recheck: set[str] = set()
        # Files sent back for a recheck: their (attempts, rechecks) carry over to the item
        # handed out next time, so the caps on both count across rechecks.
        self._carried: dict[str, tuple[int, int]] = {}
        self._taken_count = 0
        self._inflight_names: set[str] = set()
        # --once: the backlog present at the first scan
        self.backlog: set[str] | None = None
        # Flat folders are listed incrementally; --preserve-structure walks the tree each time.
        self._index = (
            None
            if opts.preserve_structure
            else FolderIndex(self.root, lambda name: self._wanted(name, name))
        )
        self._by_number: NumberIndex | None = None
        self._last_full_listing = -math.inf
        self._numbered_decided = False
        self._listed = False  # the folder has been looked at once: names judged now are new
        self._told_below_range = False
        self._decide_numbering_from_start()

    # --- set-up ------------------------------------------------------------------------------
    def _decide_numbering_from_start(self) -> None:
        start = self.opts.start_at or self.opts.start_after
        if self.opts.preserve_structure or start is None:
            self._numbered_decided = self.opts.preserve_structure
            return
        parts = split_number(os.path.basename(start))
        self._numbered_decided = True
        if parts is None:
            return
        template = _Template(parts.prefix, parts.suffix, parts.width)
        self._set_template(template)
        self.first = parts.number if self.opts.start_at else parts.number + 1
        self.next_unresolved = self.first
        end = self.range_end
        for name in self.opts.already_landed:
            number = template.number_of(name)
            if number is not None and number >= self.first and (end is None or number < end):
                self._final_above.add(number)
        self._advance()

    def _decide_numbering_from_listing(self, listing: Listing) -> None:
        if self._numbered_decided or not listing.entries:
            return
        self._numbered_decided = True
        entries = listing.entries
        parts = split_number(entries[0][0])
        if parts is None:
            return
        template = _Template(parts.prefix, parts.suffix, parts.width)
        self._set_template(template)
        assert self._by_number is not None
        if 2 * len(self._by_number.numbers) < len(entries):
            # The first name is not one of the frames (a stray 'calib01.jpg' sorting before
            # them): numbered by it, the run sent that file alone and reported success.
            template = _most_common_template([rel for rel, _path in entries])
            self._set_template(template)
            if 2 * len(self._by_number.numbers) < len(entries):
                self.template = self._by_number = None  # no numbering most names share
                return
        # From the lowest number, not the first name's: unpadded numbers do not sort in
        # number order (img_10.jpg before img_5.jpg), and frames below the first are never
        # sent. Its width names the frames reported missing.
        lowest, name = self._by_number.lowest()
        template.width = len(name) - len(template.prefix) - len(template.suffix)
        self.first = lowest
        self.next_unresolved = lowest

    def _set_template(self, template: _Template) -> None:
        # Numbering needs the flat folder's index: --preserve-structure is never numbered.
        assert self._index is not None
        self.template = template
        self._by_number = NumberIndex(template.number_of)
        for name in self._index.names:
            self._by_number.add(name)

    @property
    def numbered(self) -> bool:
        return self.template is not None

    @property
    def range_end(self) -> int | None:
        if self.first is None or not self.opts.max_files:
            return None
        return self.first + self.opts.max_files

    # --- listing -----------------------------------------------------------------------------
    def list_folder(self) -> Listing:
        entries: list[tuple[str, str]] = []
        if self.opts.preserve_structure:
            for folder, dirnames, filenames in os.walk(self.root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                rel_folder = os.path.relpath(folder, self.root)
                for name in filenames:
                    rel = name if rel_folder == "." else f"{rel_folder}/{name}"
                    if self._wanted(name, rel) and _is_regular(os.path.join(folder, name)):
                        entries.append((rel, os.path.join(folder, name)))
            entries.sort()
            return Listing(entries)
        assert self._index is not None
        now = self.clock()
        # Taken even when a full listing is due: that listing shows what they say.
        changes = self.watcher.take_changes() if self.watcher is not None else None
        if changes is None or now - self._last_full_listing >= FULL_LISTING_S:
            was_gone = self._index.gone
            added, removed = self._index.refresh()
            self._last_full_listing = now
            if self._index.gone != was_gone:
                if self._index.gone:
                    log.warning("source folder %s is gone; waiting for it to come back", self.root)
                else:
                    log.info("source folder %s is back", self.root)
        else:
            added, removed = self._index.apply(changes)
        for name in removed:
            # A young file deleted before it settled: no scan looks at it again, and its
            # first look kept the planner polling every --stable-ms for the rest of the run.
            self._first_obs.pop(name, None)
        if self._by_number is not None:
            for name in removed:
                self._by_number.remove(name, self._index.names)
            for name in added:
                self._by_number.add(name)
        self._listed = True
        return Listing(self._index)

    def _wanted(self, name: str, rel: str) -> bool:
        if self.template is not None:
            # Numbered mode filters by number: a frame below the first asked for is never
            # sent (the first never goes down), so the index need not hold it. A trigger
            # into a ring of thousands of frames then keeps a few, not all of them; and
            # looks no further at the others (the pattern match cost as much again).
            number = self.template.number_of(name)
            if number is not None and self.first is not None and number < self.first:
                if self._listed and not self._told_below_range:
                    self._tell_below_range(name, self.template.name_of(self.first))
                return False
        if name.startswith(".") or not fnmatch.fnmatchcase(name, self.opts.pattern):
            return False
        if self.template is not None:
            return True
        if self.opts.start_at is not None and rel < self.opts.start_at:
            return False
        return not (self.opts.start_after is not None and rel <= self.opts.start_after)

    def _tell_below_range(self, name: str, first: str) -> None:
        """A frame numbered below the run's range appeared after the run began: a camera
        whose numbering started again (its software restarted). Its frames are never sent by
        this run, which must not go unsaid; said once, not per frame."""
        self._told_below_range = True
        log.warning(
            "%s appeared after this run began but is numbered below its range (from %s): not "
            "sent, nor any later frame so numbered; if the camera's numbering started again, "
            "start a new run (or trigger) from its frames",
            name,
            first,
        )

    # --- deciding ------------------------------------------------------------------------------
    def scan(self) -> list[ReadyFile]:
        """List the folder and return the files newly judged complete, in name order."""
        listing = self.list_folder()
        self._decide_numbering_from_listing(listing)
        ready = self._scan_numbered(listing) if self.numbered else self._scan_names(listing)
        if self.backlog or self._recheck:
            self._drop_vanished(listing)
        return ready

    def _drop_vanished(self, listing: Listing) -> None:
        """Files the run still owes that are gone from the folder: reported, not waited for.
        They are files sent back for a recheck (name mode) and --once backlog files."""
        listed = {rel for rel, _p in listing.entries}
        for rel in sorted(self._recheck - listed):
            self._recheck.discard(rel)
            self._carried.pop(rel, None)
            self._report_vanished(rel, "vanished before it was sent again")
        backlog = self.backlog
        if backlog:
            inflight = self._inflight_names | {
                rel
                for rel in backlog
                if self.template and self.template.number_of(rel) in self._inflight_numbers
            }
            for rel in sorted(backlog - listed - inflight):
                self._report_vanished(rel, "vanished before it was sent")

    def _report_vanished(self, rel: str, what: str) -> None:
        log.warning("%s: %s", what, rel)
        self.vanished.append(rel)
        self._first_obs.pop(rel, None)
        if self.backlog is not None:
            self.backlog.discard(rel)

    def _complete(
        self,
        rel: str,
        path: str,
        lookahead_seen: bool,
        newest_mtime_ns: int | None = None,
        number: int | None = None,
    ) -> ReadyFile | None:
        now = self.wall()
        latest = observe(path, now)
        if latest is None:
            self._first_obs.pop(rel, None)
            return None
        if lookahead_seen and newest_mtime_ns is not None and latest.mtime_ns > newest_mtime_ns:
            # Written after the newest file was: a late file (a gap being filled, or one
            # being rewritten). Lookahead rests on files being written in order, so later
            # files existing says nothing about whether this one is finished.
            lookahead_seen = False
        if lookahead_seen:
            # Later frames exist: complete whatever the watcher or earlier looks said (the
            # strongest signal, docs/completion.md), the common case of a backlog.
            self._first_obs.pop(rel, None)
        elif not self._judged_complete(rel, path, latest):
            return None
        wire = rel if self.opts.preserve_structure else os.path.basename(rel)
        if number is None and self.template:
            number = self.template.number_of(rel)
        item = ReadyFile(rel, path, wire, number, latest.inode, self.clock())
        item.attempts, item.rechecks = self._carried.pop(rel, (0, 0))
        return item

    def _judged_complete(self, rel: str, path: str, latest: Observation) -> bool:
        """Whether a file without later frames is finished, by the watcher's word, stability
        and settling; keeps the first look at a file still changing."""
        state = self.watcher.state(rel) if self.watcher else WriteState.UNKNOWN
        if state is WriteState.WRITING:
            # The watcher will report the close: nothing to time, so the planner need not
            # poll every --stable-ms for this file (waiting_for_completion stays False).
            self._first_obs.pop(rel, None)
            return False
        first = self._first_obs.setdefault(rel, latest)
        if not is_complete(
            path=path,
            write_state=state,
            first=first,
            latest=latest,
            stable_s=self.opts.stable_s,
            jpeg_eoi=self.opts.jpeg_eoi,
            settle_s=self.opts.settle_s,
        ):
            if first.size != latest.size or first.mtime_ns != latest.mtime_ns:
                self._first_obs[rel] = latest  # still changing: restart the stability window
            return False
        self._first_obs.pop(rel, None)
        return True

    def _scan_numbered(self, listing: Listing) -> list[ReadyFile]:
        assert self.template is not None and self.next_unresolved is not None
        assert self._index is not None and self._by_number is not None
        present = {
            number: (name, self._index.path(name))
            for number, name in self._by_number.from_number(self.next_unresolved)
        }
        if present:
            top = max(present)
            self.max_seen = top if self.max_seen is None else max(self.max_seen, top)
        end = self.range_end
        if self.backlog is None and self.opts.once:
            self.backlog = {
                rel for number, (rel, _p) in present.items() if end is None or number < end
            }
        newest = _mtime_ns(present[max(present)][1]) if present and self.opts.lookahead else None
        ready: list[ReadyFile] = []
        for number in sorted(present):
            if end is not None and number >= end:
                break
            if number in self._inflight_numbers or number in self._final_above:
                continue
            rel, path = present[number]
            if self.backlog is not None and rel not in self.backlog:
                continue
            lookahead_seen = bool(
                self.opts.lookahead
                and self.max_seen is not None
                and self.max_seen >= number + self.opts.lookahead
            )
            item = self._complete(rel, path, lookahead_seen, newest, number)
            if item is not None:
                self._inflight_numbers.add(number)
                ready.append(item)
        if not self.opts.once:
            self._account_gaps(present)
        return ready

    def _account_gaps(self, present: dict[int, tuple[str, str]]) -> None:
        """Start timers for absent numbers below the newest frame; time out the old ones."""
        assert self.template is not None and self.next_unresolved is not None
        if self.max_seen is None:
            return
        upper = self.max_seen if self.range_end is None else min(self.max_seen, self.range_end)
        now = self.clock()
        known = sorted(
            n
            for n in set(present) | self._inflight_numbers | self._final_above
            if self.next_unresolved <= n < upper
        )
        holes: list[tuple[int, int]] = []
        cursor = self.next_unresolved
        for n in [*known, upper]:
            if n > cursor:
                holes.append((cursor, n))
            cursor = max(cursor, n + 1)
        live_starts = set()
        for start, stop in holes:
            live_starts.add(start)
            since = self._gap_since.setdefault(start, now)
            # Only the first unresolved gap ends: the run steps past it (below) instead of
            # marking each of its numbers final, which made a set of every number in it (a
            # stray frame numbered 999999999 asked for a billion). A later gap ends once the
            # frames before it are final, in the same scan when they are.
            if now - since >= self.opts.frame_timeout and start == self.next_unresolved:
                names = [
                    self.template.name_of(n)
                    for n in range(start, min(stop, start + MAX_REPORTED_NAMES))
                ]
                self.missing.count += stop - start - len(names)
                self.missing.add(names)
                log.warning(
                    "missing: %s (waited %.1f s)",
                    names[0]
                    if stop - start == 1
                    else f"{names[0]} .. {self.template.name_of(stop - 1)}",
                    now - since,
                )
                self.next_unresolved = stop
                self._advance()
                live_starts.discard(start)
        self._gap_since = {s: t for s, t in self._gap_since.items() if s in live_starts}
        self._advance()

    def _advance(self) -> None:
        assert self.next_unresolved is not None
        while self.next_unresolved in self._final_above:
            self._final_above.discard(self.next_unresolved)
            self.next_unresolved += 1

    def _scan_names(self, listing: Listing) -> list[ReadyFile]:
        if self.backlog is None and self.opts.once:
            names = [rel for rel, _p in listing.entries]
            if self.opts.max_files:
                names = names[: self.opts.max_files]
            self.backlog = set(names)
        ready: list[ReadyFile] = []
        # With --preserve-structure, each folder in name order on its own (a camera per
        # subfolder): over the whole tree, a file new in cam1/ lists below one sent from
        # cam2/, and was never sent.
        folders = (
            _by_folder(listing.entries) if self.opts.preserve_structure else {"": listing.entries}
        )
        for folder, entries in folders.items():
            self._scan_folder_names(folder, entries, ready)
        return ready

    def _scan_folder_names(
        self, folder: str, entries: list[tuple[str, str]], ready: list[ReadyFile]
    ) -> None:
        """Hand out one folder's complete files strictly in name order, into `ready`."""
        high_water = self._high_water.get(folder)
        count = len(entries)
        newest = _mtime_ns(entries[-1][1]) if count and self.opts.lookahead else None
        for index, (rel, path) in enumerate(entries):
            if rel in self._inflight_names:
                continue
            if rel in self.opts.already_landed and (high_water is None or rel > high_water):
                # landed by an earlier run: counts, is not resent
                high_water = self._high_water[folder] = rel
                self._taken_count += 1
                continue
            fresh = high_water is None or rel > high_water
            if not fresh and rel not in self._recheck:
                continue
            if self.backlog is not None and rel not in self.backlog:
                continue
            if fresh and self.opts.max_files and self._taken_count >= self.opts.max_files:
                break
            lookahead_seen = bool(self.opts.lookahead) and count - index - 1 >= self.opts.lookahead
            item = self._complete(rel, path, lookahead_seen, newest)
            if item is None:
                if fresh:
                    break  # strictly in name order
                continue
            if fresh:
                high_water = self._high_water[folder] = rel
                self._taken_count += 1
            self._recheck.discard(rel)
            self._inflight_names.add(rel)
            ready.append(item)

    # --- feedback from the sender ------------------------------------------------------------
    def mark_final(self, item: ReadyFile) -> None:
        """The file landed, failed for good or vanished: never hand it out again."""
        self._carried.pop(item.rel, None)
        if item.number is not None and self.numbered:
            self._inflight_numbers.discard(item.number)
            if self.next_unresolved is not None and item.number >= self.next_unresolved:
                self._final_above.add(item.number)
                self._advance()
        else:
            self._inflight_names.discard(item.rel)
        if self.backlog is not None:
            self.backlog.discard(item.rel)
        if self.watcher:
            self.watcher.forget(item.rel)

    def recheck(self, item: ReadyFile) -> None:
        """The file changed while it was being read: judge its completion again later."""
        self._carried[item.rel] = (item.attempts, item.rechecks)
        if item.number is not None and self.numbered:
            self._inflight_numbers.discard(item.number)
        else:
            self._inflight_names.discard(item.rel)
            self._recheck.add(item.rel)
        if self.watcher and self.watcher.state(item.rel) is WriteState.CLOSED:
            self.watcher.forget(item.rel)

    def give_up_incomplete_backlog(self, ready: set[str]) -> list[str]:
        """--once: drop backlog files never judged complete; returns their names."""
        if not self.backlog:
            return []
        stuck = sorted(self.backlog - ready)
        self.backlog -= set(stuck)
        for rel in stuck:
            self._first_obs.pop(rel, None)
        return stuck

    # --- progress ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Nothing more will be handed out, and everything handed out is final."""
        if self.backlog is not None:
            return not self.backlog
        if not self.opts.max_files:
            return False
        if self.numbered:
            end = self.range_end
            return (
                end is not None and self.next_unresolved is not None and self.next_unresolved >= end
            )
        # A file sent back for a recheck is handed out again: the run is not over without it.
        return (
            self._taken_count >= self.opts.max_files
            and not self._inflight_names
            and not self._recheck
        )

    @property
    def rechecks_pending(self) -> set[str]:
        """Names sent back for a recheck and not handed out again (name mode)."""
        return self._recheck

    @property
    def all_handed_out(self) -> bool:
        """A run with --max-files has every file it asked for in flight or final: nothing the
        folder does can change the run any more, only the workers' results can."""
        if not self.opts.max_files or self.backlog is not None:
            return False
        if not self.numbered:
            return self._taken_count >= self.opts.max_files and not self._recheck
        end, start = self.range_end, self.next_unresolved
        if end is None or start is None:
            return False
        # Both sets hold only numbers in [start, end), and no number is in both.
        return len(self._inflight_numbers) + len(self._final_above) >= end - start

    @property
    def backlog_handed_out(self) -> bool:
        """--once: every backlog file is in flight, so a scan could hand out nothing. (A file
        sent back for a recheck, or one not yet judged complete, is not in flight.)"""
        if self.backlog is None:
            return False
        in_flight: set[int] | set[str] = (
            self._inflight_numbers if self.numbered else self._inflight_names
        )
        return len(self.backlog) == len(in_flight)

    def expected_next_path(self) -> Path | None:
        """The next frame's path, when numbering predicts it (checked cheaply between listings)."""
        template = self.template
        if template is None or self.next_unresolved is None:  # not numbered
            return None
        number = self.next_unresolved if self.max_seen is None else self.max_seen + 1
        return self.root / template.name_of(number)

    @property
    def waiting_for_completion(self) -> bool:
        return bool(self._first_obs)


def _by_folder(entries: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """A tree's listing split by folder, each part still in name order."""
    folders: dict[str, list[tuple[str, str]]] = {}
    for rel, path in entries:
        folders.setdefault(rel.rpartition("/")[0], []).append((rel, path))
    return folders


def _most_common_template(names: list[str]) -> _Template:
    """The numbered name pattern most of `names` share (the first in name order on a tie);
    `names` holds at least one numbered name."""
    counts: Counter[tuple[str, str]] = Counter()
    widths: dict[tuple[str, str], int] = {}
    for name in names:
        parts = split_number(name)
        if parts is not None:
            counts[parts.prefix, parts.suffix] += 1
            widths.setdefault((parts.prefix, parts.suffix), parts.width)
    (prefix, suffix), _count = counts.most_common(1)[0]
    return _Template(prefix, suffix, widths[prefix, suffix])


def _is_regular(path: str) -> bool:
    """A regular file, not a symlink (never followed) nor a FIFO or device, which the sender
    would block on or read for ever (the flat folder's index keeps regular files only too)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_mtime_ns
    except OSError:
        return None


def cleanup_part_files(root: Path, *, older_than_s: float = 60.0) -> int:
    """Remove stale `*.part` files (left by an interrupted writer) under the source folder."""
    removed = 0
    cutoff = time.time() - older_than_s
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".part"):
                continue
            path = os.path.join(folder, name)
            try:
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed
