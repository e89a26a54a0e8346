"""The source folder's listing, kept up to date cheaply: what each planner scan starts from.

A ring buffer holds hundreds or thousands of frames and changes by a name or two per frame,
yet a live sender looks at it twice per frame. Listing it whole with scandir and judging every
entry in Python made each scan O(ring): 0.13 ms at 90 frames, 1.4 ms at 1,000, 8 ms at 5,000.
Here the folder is read with one `os.listdir` (a C loop) and only names new since the last
listing are judged; between listings, the watcher's record of names that came and went
(`apply`) keeps the index current without reading the folder at all. The first listing judges
every name, so it reads the folder with scandir instead: the file type comes with each name
(d_type), which saves an lstat per file (1,000 files: 3-4 ms -> 0.4 ms).

One folder is read at a time in a process (`_READING`). Reading a directory hands the GIL back
at every entry (CPython wraps each readdir() so), so in the trigger server, where every camera
starts its run at the same trigger, six threads reading 1,800-frame rings at once passed the
GIL to each other at nearly every entry: 4,100 context switches per event instead of ~500,
and each camera's first scan took 40-100 ms instead of 3. Taking turns, a reader mostly gets
the GIL straight back. The price: a folder slow to read (a network filesystem) holds up the
other cameras' listings for that long.
"""

from __future__ import annotations

import bisect
import os
import stat
import threading
from collections.abc import Callable
from enum import Enum
from pathlib import Path

_READING = threading.Lock()


class _Verdict(Enum):
    KEPT = "kept"  # a wanted name and a regular file
    UNWANTED = "unwanted"  # the name alone rules it out, for as long as it is there
    NOT_REGULAR = "not regular"  # a folder, symlink or device now: judged again each time


class FolderIndex:
    """The wanted regular files directly in `root`, in name order, refreshed incrementally."""

    def __init__(self, root: Path, wanted: Callable[[str], bool]) -> None:
        self.root = str(root)
        # Names from the folder's listing hold no '/': a concatenation is os.path.join's result
        # at a tenth of its cost (every scan makes a path per listed name).
        self._prefix = os.path.join(self.root, "")
        self._wanted = wanted
        self._verdicts: dict[str, _Verdict] = {}  # every name present at the last look
        self.names: list[str] = []  # the kept names, sorted
        self._entries: list[tuple[str, str]] | None = None
        self.gone = False  # the folder was not there at the last listing

    def refresh(self) -> tuple[list[str], list[str]]:
        """List the folder again; returns the kept names (added, removed) since last time."""
        if not self._verdicts:
            return self._first_listing()
        try:
            with _READING:
                current = set(os.listdir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            # Deleted or moved away (a camera making its ring folder again): empty until a
            # folder is there again; every name it held has gone.
            current = set()
            self.gone = True
        else:
            self.gone = False
        verdicts = self._verdicts
        added: list[str] = []
        removed: list[str] = []
        for name in verdicts.keys() - current:
            if verdicts.pop(name) is _Verdict.KEPT:
                removed.append(name)
        unjudged = current - verdicts.keys()
        unjudged.update(n for n, v in verdicts.items() if v is _Verdict.NOT_REGULAR)
        for name in unjudged:
            self._judge_into(name, added, removed)
        return self._update(added, removed)

    def _first_listing(self) -> tuple[list[str], list[str]]:
        added: list[str] = []
        try:
            with _READING, os.scandir(self.root) as entries:
                for entry in entries:
                    verdict = self._judge_entry(entry)
                    self._verdicts[entry.name] = verdict
                    if verdict is _Verdict.KEPT:
                        added.append(entry.name)
        except (FileNotFoundError, NotADirectoryError):
            self.gone = True
            return [], []
        self.gone = False
        return self._update(added, [])

    def _judge_entry(self, entry: os.DirEntry[str]) -> _Verdict:
        if not self._wanted(entry.name):
            return _Verdict.UNWANTED
        try:
            # Where the filesystem gives no file type, this is the lstat _judge makes.
            regular = entry.is_file(follow_symlinks=False)
        except OSError:
            regular = False  # judged again at the next listing, like any non-regular name
        return _Verdict.KEPT if regular else _Verdict.NOT_REGULAR

    def apply(self, changes: list[tuple[bool, str]]) -> tuple[list[str], list[str]]:
        """Bring the index up to date from the watcher's record of names that appeared (True)
        or went (False), instead of listing the folder; returns kept (added, removed)."""
        touched = {name for _appeared, name in changes}
        before = {name for name in touched if self._is_kept(name)}
        for appeared, name in changes:
            if appeared:
                self._judge_into(name, [], [])  # judged again even if known: a rename over it
            else:
                self._verdicts.pop(name, None)
        after = {name for name in touched if self._is_kept(name)}
        return self._update(sorted(after - before), sorted(before - after))

    def path(self, name: str) -> str:
        return self._prefix + name

    @property
    def entries(self) -> list[tuple[str, str]]:
        """(name, path) of every kept file, in name order."""
        if self._entries is None:
            self._entries = [(name, self.path(name)) for name in self.names]
        return self._entries

    def _is_kept(self, name: str) -> bool:
        return self._verdicts.get(name) is _Verdict.KEPT

    def _judge_into(self, name: str, added: list[str], removed: list[str]) -> None:
        """Judge `name` afresh; a change of verdict goes to `added` or `removed`."""
        was_kept = self._is_kept(name)
        verdict = self._judge(name)
        if verdict is None:
            self._verdicts.pop(name, None)  # gone since it was listed: judged if it comes back
        else:
            self._verdicts[name] = verdict
        now_kept = verdict is _Verdict.KEPT
        if now_kept and not was_kept:
            added.append(name)
        elif was_kept and not now_kept:
            removed.append(name)

    def _judge(self, name: str) -> _Verdict | None:
        if not self._wanted(name):
            return _Verdict.UNWANTED
        try:
            mode = os.lstat(self.path(name)).st_mode
        except FileNotFoundError:
            return None
        except OSError:
            return _Verdict.NOT_REGULAR
        return _Verdict.KEPT if stat.S_ISREG(mode) else _Verdict.NOT_REGULAR

    def _update(self, added: list[str], removed: list[str]) -> tuple[list[str], list[str]]:
        added.sort()
        removed.sort()
        for name in removed:
            del self.names[bisect.bisect_left(self.names, name)]
        for name in added:
            bisect.insort(self.names, name)
        if added or removed:
            self._entries = None
        return added, removed


class NumberIndex:
    """The kept names that carry a frame number, by number, so a scan can start at the first
    unsent frame instead of walking the whole ring."""

    def __init__(self, number_of: Callable[[str], int | None]) -> None:
        self._number_of = number_of
        self._name_of: dict[int, str] = {}
        self.numbers: list[int] = []  # sorted
        # Numbers two names carry (the same frame written with two widths): the later name
        # wins, as in a name-ordered listing, and removing one must find the other.
        self._shared: set[int] = set()

    def add(self, name: str) -> None:
        number = self._number_of(name)
        if number is None:
            return
        old = self._name_of.get(number)
        if old is None:
            self._name_of[number] = name
            bisect.insort(self.numbers, number)
        elif old != name:
            self._shared.add(number)
            self._name_of[number] = max(old, name)

    def remove(self, name: str, remaining: list[str]) -> None:
        number = self._number_of(name)
        if number is None or number not in self._name_of:
            return
        if number in self._shared:
            others = [other for other in remaining if self._number_of(other) == number]
            if len(others) <= 1:
                self._shared.discard(number)
            if others:
                self._name_of[number] = max(others)
                return
        elif self._name_of[number] != name:
            return
        del self._name_of[number]
        del self.numbers[bisect.bisect_left(self.numbers, number)]

    def lowest(self) -> tuple[int, str]:
        """(number, name) of the lowest-numbered file; the index must not be empty."""
        number = self.numbers[0]
        return number, self._name_of[number]

    def from_number(self, first: int) -> list[tuple[int, str]]:
        """(number, name) of every numbered file from `first` on, in number order."""
        start = bisect.bisect_left(self.numbers, first)
        return [(number, self._name_of[number]) for number in self.numbers[start:]]
