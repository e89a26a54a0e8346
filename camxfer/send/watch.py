"""Watching the source folder with inotify: wake the scanner early and track who is writing.

The watcher is an accelerator, not the source of truth: the scanner still lists the folder
every poll interval (inotify misses events on NFS, overflows under load, and knows nothing of
files written before it started). What it adds is (1) a wake-up as soon as a frame is
written, instead of waiting for the next poll, and (2) the write state of each file, so a
file a writer holds open and pauses on is not mistaken for a finished one.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path

from camxfer.send import inotify as F
from camxfer.send.completion import WriteState

log = logging.getLogger("camxfer.send")

_MASK = F.CREATE | F.MODIFY | F.CLOSE_WRITE | F.MOVED_TO | F.DELETE | F.MOVED_FROM | F.MOVE_SELF
MAX_CHANGES = 100_000
_NEWS = F.CREATE | F.CLOSE_WRITE | F.MOVED_TO | F.Q_OVERFLOW


class FolderWatcher:
    """Tracks write state per relative path under `root` (recursively when `recursive`)."""

    def __init__(self, root: Path, *, recursive: bool) -> None:
        self.root = root
        self.recursive = recursive
        self.states: dict[str, WriteState] = {}
        self._inotify = F.Inotify()
        self._dirs: dict[int, str] = {}  # watch descriptor -> relative folder ('' = root)
        # Names that appeared (True) or went (False) directly in the root, in order, since the
        # planner last took them; None after lost events (the planner must list the folder).
        # Only for a flat folder: a recursive sender walks its tree on every scan anyway.
        self._changes: list[tuple[bool, str]] | None = None if recursive else []
        self._root_watched = False
        self._add_tree("")

    @classmethod
    def create(cls, root: Path, *, recursive: bool) -> FolderWatcher | None:
        try:
            return cls(root, recursive=recursive)
        except OSError as exc:
            log.info("inotify unavailable (%s); polling only", exc)
            return None

    def fileno(self) -> int:
        return self._inotify.fileno()

    def _add_tree(self, rel: str) -> None:
        folder = self.root / rel if rel else self.root
        try:
            wd = self._inotify.add_watch(str(folder), _MASK | (F.ONLYDIR if rel else 0))
        except OSError as exc:
            log.debug("cannot watch %s: %s", folder, exc)
            return
        self._dirs[wd] = rel
        self._root_watched = self._root_watched or not rel
        if self.recursive:
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            self._add_tree(f"{rel}/{entry.name}" if rel else entry.name)
            except OSError:
                pass

    def poll(self, timeout_ms: float) -> bool:
        """Wait up to `timeout_ms` for news (an event that can make a file ready), applying
        every event on the way; True when there was news.

        A camera writes each frame in many pieces, and each piece is an event: returning on
        each of them woke the planner about 8 times per frame for nothing.
        """
        deadline = time.monotonic() + max(timeout_ms, 0) / 1000
        while True:
            left_ms = (deadline - time.monotonic()) * 1000
            if self._apply(self._inotify.read(max(0, math.ceil(left_ms)))):
                return True
            if left_ms <= 0:
                return False

    def _apply(self, events: list[F.Event]) -> bool:
        # Only a new file (lookahead), a close, a rename in or lost events can make a file
        # ready; writes and deletions (the ring buffer dropping its oldest frame) cannot, and
        # waking the planner for them doubled a live sender's folder listings.
        news = any(event.mask & _NEWS for event in events)
        for event in events:
            if event.mask & F.Q_OVERFLOW:
                # Lost events: forget what we knew and let stability checks decide.
                self.states.clear()
                self._changes = None
                continue
            folder = self._dirs.get(event.wd)
            if event.mask & (F.IGNORED | F.MOVE_SELF) and folder == "":
                self._lose_root(event.wd)
                news = True
            if folder is None or not event.name:
                continue
            rel = f"{folder}/{event.name}" if folder else event.name
            if event.mask & F.ISDIR:
                if self.recursive and event.mask & (F.CREATE | F.MOVED_TO):
                    self._add_tree(rel)
                continue
            if not folder:
                self._note_change(event.mask, event.name)
            if event.mask & (F.DELETE | F.MOVED_FROM):
                self.states.pop(rel, None)
            elif event.mask & (F.CLOSE_WRITE | F.MOVED_TO):
                self.states[rel] = WriteState.CLOSED
            elif event.mask & (F.CREATE | F.MODIFY):
                self.states[rel] = WriteState.WRITING
        return news

    def _lose_root(self, wd: int) -> None:
        """The folder itself was removed or moved away: no record of names can be kept, and
        what the watch says from now on (a moved folder's events) is not about our path. The
        write states go too: a file of the same name in a folder made again is another file,
        and a stale 'closed' would send it half written."""
        del self._dirs[wd]
        self._root_watched = False
        self.states.clear()

    def _note_change(self, mask: int, name: str) -> None:
        if self._changes is None:
            return
        if mask & (F.CREATE | F.MOVED_TO):
            self._changes.append((True, name))
        elif mask & (F.DELETE | F.MOVED_FROM):
            self._changes.append((False, name))
        if len(self._changes) > MAX_CHANGES:
            self._changes = None  # nobody is taking them: a listing is cheaper than the list

    def take_changes(self) -> list[tuple[bool, str]] | None:
        """The names that appeared in or left the root folder since the last call, in order
        (every event the kernel holds is read first); None when events were lost or the folder
        is not (or no longer) watched, and it must be listed instead."""
        self.poll(0)
        if self.recursive:
            return None
        if not self._root_watched:
            # Watch the folder now at our path, if one is (made again after it went); the
            # listing this None asks for covers whatever happened in it before.
            if self.root.is_dir():
                self._add_tree("")
                self._changes = []
            return None
        changes, self._changes = self._changes, []
        return changes

    def state(self, rel: str) -> WriteState:
        return self.states.get(rel, WriteState.UNKNOWN)

    def forget(self, rel: str) -> None:
        self.states.pop(rel, None)

    def close(self) -> None:
        self._inotify.close()

    def close_in_background(self) -> None:
        """Close without waiting: the kernel takes 10-20 ms to free an inotify instance (it
        waits out an SRCU grace period), which a --once run would otherwise add to its end."""
        threading.Thread(target=self.close, name="watcher-close", daemon=True).start()
