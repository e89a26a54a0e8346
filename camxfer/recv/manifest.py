"""Landing a sender's manifest: check each listed file on disk, merge, write it durably.

The receiver trusts nothing in a manifest it has not checked: every entry (the sender's and
those of the manifest already in the folder) is kept only when a regular file of that name,
size and XXH3-128 (as recorded when it landed, else read again) is there now, read through
the landing root's directory descriptors (no symlink is followed). The result replaces
`MANIFEST_NAME` in the destination folder with `landing.replace_file`, under an exclusive lock
on the folder so two senders finishing at once (one per receiver worker process) cannot lose
each other's entries.

Not here: the wire format (`protocol`), the document itself (`camxfer.manifest`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from camxfer.errors import UnsafePathError
from camxfer.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    ManifestError,
    Skipped,
    iso_time,
    merge,
    parse_manifest,
    read_all,
)
from camxfer.protocol import FixedHeader, Reply, Status, new_hasher
from camxfer.recv.landing import (
    READ_EXISTING_FLAGS,
    LandingRoot,
    landed_checksum,
    replace_file,
    resolve_folder,
    split_relative,
)

log = logging.getLogger("camxfer.recv")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_BYTES = 1 << 20
LOCK_TIMEOUT_S = 30.0  # longest wait for another worker landing a manifest in the same folder


@dataclass(frozen=True)
class ManifestLanded:
    path: Path
    files: int  # entries in the landed manifest
    unverified: int  # entries of this sender's manifest not found whole on disk


def land_manifest(root: LandingRoot, dest: str, body: bytes, now: float) -> ManifestLanded:
    """Check, merge and land one manifest; raises ManifestError, UnsafePathError or OSError."""
    incoming = parse_manifest(body)
    # Refuse the whole manifest if one name could leave the folder; checked once, used below.
    parts = {name: _name_parts(name) for name in incoming.files}
    folders = resolve_folder(root.root, dest)
    dir_fd = root.open_folder(folders)
    try:
        lock_folder(dir_fd)
        old = _read_existing(dir_fd, root.root.joinpath(*folders))
        merged = merge(old, incoming)
        merged.updated = iso_time(now)
        checked, dropped = _verified(dir_fd, merged.files, rehash=set(incoming.files), parts=parts)
        if old is not None:
            # A new claim that is not on disk must not hide an older entry that still is.
            earlier = {n: old.files[n] for n, _why in dropped if n in old.files}
            earlier = {n: e for n, e in earlier.items() if e != merged.files[n]}
            checked.update(_verified(dir_fd, earlier, rehash=set())[0])
        merged.files = checked
        unverified = tuple(
            Skipped(name, f"unverified: {why}") for name, why in dropped if name in incoming.files
        )
        if incoming.runs and unverified:
            merged.runs[-1] = merged.runs[-1]._replace(unverified=unverified)
        for name, why in dropped:
            log.warning("manifest %s: %s left out: %s", "/".join(folders) or ".", name, why)
        replace_file(root, dir_fd, MANIFEST_NAME, merged.encode())
    finally:
        os.close(dir_fd)  # also releases the lock
    path = root.root.joinpath(*folders, MANIFEST_NAME)
    return ManifestLanded(path, len(checked), len(unverified))


def lock_folder(dir_fd: int, timeout: float = LOCK_TIMEOUT_S) -> None:
    """Take the folder's manifest lock, waiting at most `timeout`: a session never hangs on
    it (the sender gets a retryable error and tries again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise OSError(errno.EBUSY, "another manifest is being landed there") from None
            time.sleep(0.01)


def _name_parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise UnsafePathError(f"manifest entry {name!r} is absolute")
    parts = split_relative(name, "manifest entry")
    if not parts:
        raise UnsafePathError(f"manifest entry {name!r} is empty")
    return parts


def _read_existing(dir_fd: int, shown: Path) -> Manifest | None:
    try:
        fd = os.open(MANIFEST_NAME, READ_EXISTING_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        data = read_all(fd)
    finally:
        os.close(fd)
    try:
        return parse_manifest(data)
    except ManifestError as exc:
        # Its files are not lost: the new manifest lists those this sender had acknowledged.
        log.warning("%s/%s is unreadable (%s); writing a new one", shown, MANIFEST_NAME, exc)
        return None


def _verified(
    dir_fd: int,
    entries: dict[str, FileEntry],
    rehash: set[str],
    parts: dict[str, list[str]] | None = None,
) -> tuple[dict[str, FileEntry], list[tuple[str, str]]]:
    """The entries whose file is whole on disk now (landed time filled in), and the others.

    Entries in `rehash` (this sender's) are checked against the checksum recorded when the file
    landed (`landed_checksum`), or read and hashed where none was recorded; the others were
    checked when they were first listed, and are checked for presence and size only, so a
    folder that many runs share does not cost a re-read of all its files at every run's end.
    """
    kept: dict[str, FileEntry] = {}
    dropped: list[tuple[str, str]] = []
    known = parts or {}
    landed_at = _LandedTimes()
    for name, entry in entries.items():
        try:
            name_parts = known.get(name) or _name_parts(name)
            problem, mtime = _check_file(dir_fd, name_parts, entry, name in rehash)
        except UnsafePathError as exc:
            problem, mtime = str(exc), 0.0
        if problem:
            dropped.append((name, problem))
        elif entry.landed:
            kept[name] = entry
        else:
            kept[name] = FileEntry(entry.name, entry.size, entry.checksum, landed_at(mtime))
    return kept, dropped


class _LandedTimes:
    """`iso_time` for many files landed within the same few seconds: the date and time are
    formatted once per second, and only the milliseconds per file."""

    def __init__(self) -> None:
        self._second: int | None = None
        self._prefix = ""

    def __call__(self, seconds: float) -> str:
        whole = int(seconds)
        if whole != self._second:
            self._second, self._prefix = whole, iso_time(whole)[:-5]
        return f"{self._prefix}.{int((seconds - whole) * 1000):03d}Z"


def _check_file(
    dir_fd: int, parts: list[str], entry: FileEntry, rehash: bool
) -> tuple[str | None, float]:
    """(None, mtime) when the file is whole, else (what is wrong, 0)."""
    opened: list[int] = []
    try:
        parent = dir_fd
        for part in parts[:-1]:
            parent = os.open(part, _DIR_FLAGS, dir_fd=parent)
            opened.append(parent)
        fd = os.open(parts[-1], READ_EXISTING_FLAGS, dir_fd=parent)
        opened.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file", 0.0
        if info.st_size != entry.size:
            return f"size is {info.st_size}, not {entry.size}", 0.0
        if not rehash:
            return None, info.st_mtime
        recorded = landed_checksum(fd)
        if recorded is not None:  # verified when it landed: no need to read it again
            if recorded.hex() != entry.checksum:
                return "content differs from its checksum", 0.0
            return None, info.st_mtime
        hasher = new_hasher()
        while chunk := os.read(fd, _READ_BYTES):
            hasher.update(chunk)
        if hasher.hexdigest() != entry.checksum:
            return "content differs from its checksum", 0.0
        return None, info.st_mtime
    except FileNotFoundError:
        return "not found", 0.0
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return "not a plain file under the folder", 0.0
        return f"cannot read it: {exc.strerror}", 0.0
    finally:
        for fd in reversed(opened):
            with contextlib.suppress(OSError):
                os.close(fd)


def manifest_reply(
    root: LandingRoot, use_dest_paths: bool, fixed: FixedHeader, dest: str, body: bytes
) -> Reply:
    """Land the MANIFEST message `fixed` (its dest and body read) and say how it went."""
    seq = fixed.seq
    if dest and not use_dest_paths:
        return Reply(
            seq,
            Status.DEST_PATHS_DISABLED,
            "this receiver does not take destination paths (start it with --use-dest-paths)",
        )
    hasher = new_hasher()
    hasher.update(body)
    if hasher.digest() != fixed.checksum:
        return Reply(seq, Status.CHECKSUM_MISMATCH, "manifest bytes do not match their checksum")
    try:
        landed = land_manifest(root, dest, body, time.time())
    except ManifestError as exc:
        return Reply(seq, Status.BAD_MANIFEST, str(exc))
    except UnsafePathError as exc:
        return Reply(seq, Status.UNSAFE_PATH, str(exc))
    except OSError as exc:
        status = Status.NO_SPACE if exc.errno in (errno.ENOSPC, errno.EDQUOT) else Status.IO_ERROR
        return Reply(seq, status, f"cannot land the manifest: {exc.strerror}")
    log.info(
        "manifest %s: %d files%s",
        landed.path,
        landed.files,
        f", {landed.unverified} listed but not found whole" if landed.unverified else "",
    )
    return Reply(seq, Status.OK, f"{landed.files} files; {landed.unverified} unverified")
