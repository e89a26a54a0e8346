"""Seeing files arrive at a destination: when each name first appeared, from inotify.

Responsible for: watching a few folders (IN_CREATE, IN_MOVED_TO, and with `writes` IN_MODIFY)
from a thread and recording, per folder, the wall-clock time each name was first seen - the
file the receiver is writing (its first byte: a write into its unnamed file, which inotify
names `#<inode>`, or a named temporary `.camxfer-tmp-*` created where a filesystem has no
O_TMPFILE) and the final name (created by link(2) after the data was fsynced: the frame has
landed). Event times are taken when the thread reads the event, so they are late by the
thread's wake-up, not early.
Not responsible for: deciding what the times mean (live, trigger).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from camxfer.send import inotify as F

# Names that are not a landed frame: an unnamed file being written, a hidden temporary.
NOT_LANDED = ("#", ".")


class ArrivalWatcher:
    def __init__(self, folders: dict[str, Path], *, writes: bool = False) -> None:
        """With `writes`, also watch writes (one event per write call: only for a short
        measure), which is how the first byte into an unnamed file shows."""
        self._inotify = F.Inotify()
        self._labels: dict[int, str] = {}
        mask = F.CREATE | F.MOVED_TO | (F.MODIFY if writes else 0)
        for label, folder in folders.items():
            folder.mkdir(parents=True, exist_ok=True)
            wd = self._inotify.add_watch(str(folder), mask)
            self._labels[wd] = label
        self.landed: dict[str, dict[str, float]] = {label: {} for label in folders}
        self.first_byte: dict[str, float] = {}  # label -> first write seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrival-watcher", daemon=True)

    def __enter__(self) -> ArrivalWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._inotify.close()

    def landed_count(self) -> int:
        with self._lock:
            return sum(len(names) for names in self.landed.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            events = self._inotify.read(100)
            now = time.time()
            with self._lock:
                for event in events:
                    label = self._labels.get(event.wd)
                    if label is None or not event.name:
                        continue
                    if event.name.startswith(NOT_LANDED):
                        self.first_byte.setdefault(label, now)
                    elif event.mask & (F.CREATE | F.MOVED_TO):
                        self.landed[label].setdefault(event.name, now)
