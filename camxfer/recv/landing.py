"""Landing files on the storage host: where a file may go, and writing it atomically and durably.

Path safety lives here and only here: `resolve_destination` turns the (untrusted) destination
and name from the wire into checked path components, and every write goes through
`LandingRoot`, which walks those components with directory file descriptors (O_NOFOLLOW at each
step), so a symlink planted or swapped anywhere under the root cannot lead a write outside it.

A file is written to an unnamed file in its final folder (O_TMPFILE), fsynced, linked to its
final name (link refuses to replace an existing file, unlike rename), and the folder is fsynced;
only then is it acknowledged (RELIABILITY-NOTES §1). An unnamed file is never visible to
readers and vanishes with its writer, whatever kills it. Filesystems without O_TMPFILE get a
temporary name instead; those names carry the writer's pid so a supervisor can remove the ones
a dead worker left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import logging
import mmap
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from camxfer import libc
from camxfer.errors import UnsafePathError
from camxfer.protocol import new_hasher
from camxfer.recv.direct import (
    MEASURED_MIN_BYTES,
    TIMED_BYTES,
    DirectWriter,
    PageCacheCost,
    open_direct,
    write_all,
)

log = logging.getLogger("camxfer.recv")

# One path component: no leading dot (so no '.', '..' or hidden files), no separators, no NUL.
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@=,-]{0,254}")
TEMP_PREFIX = ".camxfer-tmp-"
# The checksum a landed file was verified against, kept on the file itself, so a manifest can
# be checked later without reading every file again (filesystems without user xattrs: re-read).
CHECKSUM_XATTR = "user.camxfer.xxh3-128"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?P<pid>\d+)-\d+$")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Reading a file found under a name (a landed frame, a manifest): never through a symlink, and
# O_NONBLOCK, so a FIFO planted under the name does not hang the reader on open.
READ_EXISTING_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# No O_EXCL: that would forbid the link that gives the file its name.
_UNNAMED_FLAGS = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC
# What a filesystem (or a kernel before 3.11) without O_TMPFILE answers.
_NO_UNNAMED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})


def prepare_landing_root(path: Path) -> None:
    """Make `path` (and its parents) if needed and check that a file can be created in it.

    Raises OSError: ENOTDIR when it is not a folder, and EROFS, EACCES or EPERM (a read-only
    mount, another owner, an immutable folder) when nothing can land there, so a receiver
    refuses at start instead of refusing every file a sender then retries in vain.
    """
    if path.exists() and not path.is_dir():
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    path.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, _UNNAMED_FLAGS, 0o600)  # unnamed: nothing to clean up
    except OSError as exc:
        if exc.errno not in _NO_UNNAMED:
            raise
        probe = os.path.join(path, f"{TEMP_PREFIX}{os.getpid()}-0")
        fd = os.open(probe, _TEMP_FLAGS, 0o600)
        os.unlink(probe)
    os.close(fd)


def check_component(part: str, what: str) -> str:
    if not _SAFE_COMPONENT.fullmatch(part):
        raise UnsafePathError(f"{what} component {part!r} is not a safe file name")
    return part


def split_relative(path: str, what: str) -> list[str]:
    """Split a relative path into safe components; refuses '..', empty parts, NUL, backslashes."""
    if "\\" in path or "\0" in path:
        raise UnsafePathError(f"{what} {path!r} contains a backslash or NUL")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return [check_component(p, what) for p in parts]


def resolve_folder(root: Path, dest: str) -> list[str]:
    """Check a wire destination; return its folder components under root.

    A relative `dest` is taken under `root`. An absolute one is accepted only when it lies
    inside `root` (so `--dest-path /mnt/destination/` works with `--out-dir /mnt`).
    """
    if dest.startswith("/"):
        if "\0" in dest or "/../" in dest + "/" or "\\" in dest:
            raise UnsafePathError(f"destination {dest!r} is not a plain absolute path")
        inside = _relative_to_root(root, dest)
        if inside is None:
            raise UnsafePathError(f"destination {dest!r} is outside the receiver's folder {root}")
        dest = inside
    return split_relative(dest, "destination")


def resolve_destination(root: Path, dest: str, name: str) -> tuple[list[str], str]:
    """Check a wire destination and name; return (folder components under root, file name)."""
    folders = resolve_folder(root, dest)
    if name.startswith("/"):
        # A name is always relative to its destination; '/etc/x' must not quietly become
        # '<root>/etc/x' (the sender meant somewhere else), so refuse it like any escape.
        raise UnsafePathError(f"file name {name!r} is absolute")
    name_parts = split_relative(name, "file name")
    if not name_parts:
        raise UnsafePathError(f"file name {name!r} is empty")
    return folders + name_parts[:-1], name_parts[-1]


def _relative_to_root(root: Path, dest: str) -> str | None:
    target = Path(os.path.normpath(dest))
    # Accept the root as the user wrote it and as it resolves (e.g. /mnt -> /media/mnt).
    for base in {Path(os.path.normpath(root)), root.resolve()}:
        if target == base or target.is_relative_to(base):
            return target.relative_to(base).as_posix()
    return None


@dataclass(frozen=True)
class Landed:
    status: str  # "landed" or "duplicate"
    path: Path


class ChecksumMismatch(Exception):
    """The bytes received do not match the checksum the sender declared."""


class ExistsDifferent(Exception):
    """A different file already has the final name; it is left untouched."""


def _open_root(root: Path) -> int:
    """The output folder, made if missing, opened (the path to it may hold symlinks; nothing
    below it is followed)."""
    root.mkdir(parents=True, exist_ok=True)
    return os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)


class LandingRoot:
    """An open handle on a receiver's output folder; all writes happen beneath it."""

    def __init__(self, root: Path, *, overwrite: bool = False) -> None:
        self.root = root
        self.overwrite = overwrite
        self._root_fd = _open_root(root)
        self._seq = itertools.count()
        self._active: set[Path] = set()  # temporaries being written, removed on shutdown
        self._lock = threading.Lock()
        self.direct_possible = True  # until the filesystem refuses an O_DIRECT open
        self.page_cache = PageCacheCost()
        # Until the filesystem refuses O_TMPFILE. An unnamed file is linked by its /proc path
        # (linkat with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
        self.unnamed_possible = os.path.isdir("/proc/self/fd")

    def close(self) -> None:
        os.close(self._root_fd)

    def track(self, temp: Path, active: bool) -> None:
        with self._lock:
            (self._active.add if active else self._active.discard)(temp)

    def remove_active_temps(self) -> int:
        """Remove the temporaries of files still being written (at shutdown)."""
        with self._lock:
            temps, self._active = self._active, set()
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return len(temps)

    def open_folder(self, folders: Iterable[str]) -> int:
        """Open (creating as needed) the folder at `folders` under the root; caller closes it.

        Every step is an openat with O_NOFOLLOW, so a symlink anywhere on the way fails
        with ELOOP/ENOTDIR instead of leading outside the root.
        """
        folders = tuple(folders)
        try:
            return self._walk(folders)
        except FileNotFoundError:
            if not self.reopen_if_removed():
                raise
        return self._walk(folders)

    def _walk(self, folders: tuple[str, ...]) -> int:
        # A new open file description, never a dup of the root's: a lock taken on it (a
        # manifest's flock) must end with this descriptor, not live on with the root's.
        fd = os.open(".", _DIR_FLAGS, dir_fd=self._root_fd)
        try:
            if not folders and self._root_removed():
                # The root itself, deleted: no step below it would fail to say so (a mkdir
                # in a deleted folder does), and files made in it fail with EPERM or ENOENT.
                raise FileNotFoundError(errno.ENOENT, "the receiver's folder was removed")
            for part in folders:
                child = _open_or_make_folder(fd, part)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def reopen_if_removed(self) -> bool:
        """Open the root again, made again as at start, if the folder held was deleted.

        Nothing can be made in a deleted folder (ENOENT), so a receiver whose out-dir was
        removed would refuse every file until restarted, even once the folder was back.
        Asked after an ENOENT (and for files landing in the root itself, once per batch:
        one fstat), never per file. Whether it reopened the root.
        """
        with self._lock:
            if not self._root_removed():
                return False  # still there: the ENOENT was about something below it
            fd = _open_root(self.root)
            # dup2 swaps it in under the same number: another thread's openat on the old
            # number meets the old folder or the new one, never an unrelated descriptor.
            os.dup2(fd, self._root_fd, inheritable=False)
            os.close(fd)
        log.warning("%s was removed under the receiver; opened again (made if missing)", self.root)
        return True

    def _root_removed(self) -> bool:
        """Whether the folder held as the root was deleted: no link left (one fstat), and
        its path no longer leads to it (a filesystem may report no links for a folder)."""
        held = os.fstat(self._root_fd)
        if held.st_nlink > 0:
            return False
        try:
            now = os.stat(self.root)
        except FileNotFoundError:
            return True
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    def temp_name(self) -> str:
        return f"{TEMP_PREFIX}{os.getpid()}-{next(self._seq)}"


class FileLanding:
    """One file being landed: create the temp, take the bytes, then commit or abort.

    Usage: `write()` each chunk as it arrives, then `commit()` (verify, fsync, link, fsync
    the folder) or `abort()` (remove the temp). A write error is remembered and raised at
    commit, so the caller can keep draining the body from the socket and stay in sync.
    """

    def __init__(
        self,
        root: LandingRoot,
        folders: Sequence[str],
        name: str,
        size: int,
        checksum: bytes,
        *,
        direct_stage: mmap.mmap | None = None,
        folder_fd: int | None = None,
    ):
        """With `direct_stage`, the body is written with O_DIRECT through that buffer
        (camxfer.recv.direct), where the filesystem allows it. With `folder_fd`, the folder
        at `folders` is the caller's, open already (`BatchFolders`): the landing borrows the
        descriptor and never closes it."""
        self.root = root
        self.folders = tuple(folders)  # also the key of its folder in `BatchFolders`
        self.name = name
        self.size = size
        self.checksum = checksum
        self._hasher = new_hasher()
        self._written = 0
        self._timed = 0  # bytes of the first buffered writes, and their CPU time
        self._timed_cpu = 0.0
        self.error: OSError | None = None
        self._owns_folder = folder_fd is None
        self._dir_fd = root.open_folder(folders) if folder_fd is None else folder_fd
        self._temp: str | None = None  # the temporary name, where the file has one
        self._temp_path: Path | None = None
        self._direct: DirectWriter | None = None
        try:
            fd = self._open_unnamed(direct_stage) if root.unnamed_possible else None
            self._fd = self._open_named(direct_stage) if fd is None else fd
        except BaseException:
            if self._owns_folder:
                os.close(self._dir_fd)
            raise
        self._closed = False
        self._sealed = False
        self._writeback_started = False

    def _open_unnamed(self, direct_stage: mmap.mmap | None) -> int | None:
        """An O_TMPFILE file in the folder; None where the filesystem has none."""
        if direct_stage is not None and self.root.direct_possible:
            try:
                fd = os.open(".", _UNNAMED_FLAGS | os.O_DIRECT, 0o644, dir_fd=self._dir_fd)
            except OSError as exc:
                if exc.errno not in _NO_UNNAMED:
                    raise
            else:
                self._direct = DirectWriter(fd, direct_stage)
                return fd
        try:
            fd = os.open(".", _UNNAMED_FLAGS, 0o644, dir_fd=self._dir_fd)
        except OSError as exc:
            if exc.errno not in _NO_UNNAMED:
                raise
            self.root.unnamed_possible = False  # stop asking; the named way decides on direct
            return None
        if direct_stage is not None:
            self.root.direct_possible = False  # unnamed works, so O_DIRECT was the refusal
        return fd

    def _open_named(self, direct_stage: mmap.mmap | None) -> int:
        self._temp = self.root.temp_name()
        if direct_stage is not None and self.root.direct_possible:
            fd = open_direct(self._temp, _TEMP_FLAGS, self._dir_fd)
            if fd is not None:
                self._direct = DirectWriter(fd, direct_stage)
                return self._track(fd)
            self.root.direct_possible = False  # this filesystem refuses it: stop asking
        return self._track(os.open(self._temp, _TEMP_FLAGS, 0o644, dir_fd=self._dir_fd))

    def _track(self, fd: int) -> int:
        """Register the named temporary, so a shutdown removes it."""
        assert self._temp is not None
        self._temp_path = self.root.root.joinpath(*self.folders, self._temp)
        self.root.track(self._temp_path, True)
        return fd

    @property
    def final_path(self) -> Path:
        return self.root.root.joinpath(*self.folders, self.name)

    @property
    def direct(self) -> bool:
        """Whether the body goes to disk with O_DIRECT."""
        return self._direct is not None

    def write(self, chunk: memoryview) -> None:
        self._hasher.update(chunk)
        self._written += len(chunk)
        if self.error is not None:
            return
        try:
            if self._direct is not None:
                self._direct.write(chunk)
            elif self._timed < TIMED_BYTES:
                started = time.thread_time()
                write_all(self._fd, chunk)
                self._timed_cpu += time.thread_time() - started
                self._timed += len(chunk)
            else:
                write_all(self._fd, chunk)
        except OSError as exc:
            self.error = exc

    def receive_room(self, limit: int) -> memoryview | None:
        """For a landing with O_DIRECT: where up to `limit` more body bytes can be received
        (its aligned stage, so they are not copied there again; then `received`). None for
        one through the page cache, and once a write has failed: `write` takes (and, after a
        failure, drops) the bytes then."""
        if self._direct is None or self.error is not None:
            return None  # a failed write may have left the stage full: no room to offer
        return self._direct.room(limit)

    def received(self, data: memoryview) -> None:
        """`data`, the start of `receive_room()`, holds the next body bytes."""
        assert self._direct is not None
        self._hasher.update(data)
        self._written += len(data)
        try:
            self._direct.received(len(data))
        except OSError as exc:
            self.error = exc

    def seal(self) -> None:
        """Check the bytes received against the declared size and checksum.

        On failure the temp is removed and the error raised. A sealed file may have its data
        made durable together with others (`sync_sealed`) before `commit(data_synced=True)`.
        """
        if self._sealed:
            return
        try:
            if self._direct is not None and self.error is None:
                try:
                    self._direct.finish()
                except OSError as exc:
                    self.error = exc
            if self.error is not None:
                raise self.error
            if self._written != self.size or self._hasher.digest() != self.checksum:
                raise ChecksumMismatch(
                    f"{self.name}: received bytes do not match the sender's checksum"
                )
        except BaseException:
            self.abort()
            raise
        with contextlib.suppress(OSError):  # no user xattrs here: manifests re-read the file
            os.setxattr(self._fd, CHECKSUM_XATTR, self.checksum)
        if self._direct is None and self._timed >= MEASURED_MIN_BYTES:
            self.root.page_cache.record(self._timed, self._timed_cpu)
        self._sealed = True
        if self.size >= EARLY_WRITEBACK_BYTES:  # of a direct file, only its partial last page
            self.start_writeback()

    def start_writeback(self) -> None:
        """Start writing a sealed file's data back, once: at its seal for a large file, or
        before fsyncing several files one by one, so their writes go to the disk together."""
        if self._sealed and not self._closed and not self._writeback_started:
            start_writeback(self._fd)
            self._writeback_started = True

    def commit(self, *, data_synced: bool = False, sync_folder: bool = True) -> Landed:
        """Make the file durable under its final name; on any failure the temp is removed.

        With `data_synced`, the caller has already made the sealed file's data durable.
        Without `sync_folder` (only for a borrowed `folder_fd`), the folder is not fsynced
        here: the caller must fsync it before acknowledging the file (group commit).
        """
        assert sync_folder or not self._owns_folder, "only the folder's owner can sync it later"
        self.seal()
        try:
            if not data_synced:
                # An fsync error means the data may be gone: never retry it on this fd and
                # ack (PostgreSQL "fsyncgate"); drop the temp and let the sender resend.
                os.fsync(self._fd)
            status = self._link_final()
            self._close_fd()
            if sync_folder:
                os.fsync(self._dir_fd)
            return Landed(status, self.final_path)
        except BaseException:
            self.abort()
            raise
        finally:
            self._release()

    @property
    def dir_fd(self) -> int:
        return self._dir_fd

    def _link_final(self) -> str:
        try:
            self._link(self.name)
        except FileExistsError:
            if _same_content(self._dir_fd, self.name, self.size, self.checksum):
                self._unlink_temp()
                return "duplicate"
            if not self.root.overwrite:
                raise ExistsDifferent(
                    f"{self.name} already exists at the destination with different content"
                ) from None
            if self._temp is None:  # rename needs a name to move: give the file one first
                temp = self.root.temp_name()
                self._link(temp)
                self._temp = temp
            os.rename(self._temp, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            self._temp = None
            return "landed"
        self._unlink_temp()
        return "landed"

    def _link(self, name: str) -> None:
        if self._temp is None:  # unnamed: the still open descriptor's /proc link is the source
            # With a dir_fd, os.link calls linkat with AT_SYMLINK_FOLLOW; a plain link() would
            # try to link the /proc symlink itself (EXDEV).
            os.link(f"/proc/self/fd/{self._fd}", name, dst_dir_fd=self._dir_fd)
        else:
            os.link(
                self._temp,
                name,
                src_dir_fd=self._dir_fd,
                dst_dir_fd=self._dir_fd,
                follow_symlinks=False,
            )

    def _unlink_temp(self) -> None:
        if self._temp is not None and self._dir_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp, dir_fd=self._dir_fd)

    def abort(self) -> None:
        self._close_fd()
        self._unlink_temp()
        self._release()

    def _close_fd(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def _release(self) -> None:
        if self._temp_path is not None:
            self.root.track(self._temp_path, False)
        if self._dir_fd >= 0 and self._owns_folder:
            os.close(self._dir_fd)
        self._dir_fd = -1


class BatchFolders:
    """The folders of one group commit's files, each opened once and fsynced once.

    A session lands a batch of files, nearly always into one folder; opening it per file
    cost three system calls and a close, and fsyncing it per file a dup, an fstat and a
    close more. The descriptors live only until the batch is acknowledged, so a folder
    removed or replaced between batches is opened afresh, as before.
    """

    def __init__(self, root: LandingRoot) -> None:
        self._root = root
        self._fds: dict[tuple[str, ...], int] = {}

    def open(self, folders: Sequence[str]) -> int:
        """The open folder at `folders` under the root (made as needed); do not close it."""
        key = tuple(folders)
        fd = self._fds.get(key)
        if fd is None:
            fd = self._fds[key] = self._root.open_folder(key)
        return fd

    def sync(self, folders: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], bool]:
        """Fsync each of `folders` once; whether each is durable (False: its fsync failed)."""
        synced = {}
        for key in folders:
            if key not in synced:
                try:
                    os.fsync(self._fds[key])
                    synced[key] = True
                except OSError:
                    synced[key] = False
        return synced

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


def _open_or_make_folder(parent: int, part: str) -> int:
    """Open the folder `part` in `parent`, making it first if it is not there.

    Opened first: nearly always it exists, and a mkdir that fails still takes the parent's
    lock exclusively (every worker landing in the same folder queued on it, once per file).
    """
    try:
        return _open_folder(parent, part)
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileExistsError):  # another worker may make it meanwhile
        os.mkdir(part, 0o755, dir_fd=parent)
    return _open_folder(parent, part)


def _open_folder(parent: int, part: str) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(f"{part!r} under the destination is not a plain folder") from exc
        raise


_syncfs = libc.function("syncfs", ctypes.c_int)
_sync_file_range = libc.function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)
_SYNC_FILE_RANGE_WRITE = 2


# The smallest file whose writeback is started as soon as it is sealed. Smaller files wait
# for the batch's sync, which writes them together: starting each on its own cost the
# receiver 8-11 % more CPU on 100-300 KiB frames (an I/O and a virtio kick per file).
EARLY_WRITEBACK_BYTES = 512 << 10


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a whole file's dirty pages to disk now, without waiting.

    The file's data then goes to disk while the next files arrive, instead of all at once in
    the batch's syncfs or fsync, which finds most of it already written (bulk: about 10 %
    faster here; only for files of EARLY_WRITEBACK_BYTES or more). It promises nothing:
    durability still comes from that sync; an error here is ignored, and the sync reports it.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def sync_sealed(landings: list[FileLanding]) -> bool:
    """Make the data of several sealed files durable at once: one syncfs per filesystem.

    An fsync per file makes the filesystem commit its journal and flush the disk cache once per
    file; one syncfs writes back every dirty page and commits once for the whole batch (group
    commit, as databases do for their logs); ask `syncfs_pays_off` first. Returns False when it
    did nothing (fewer than two files, or no syncfs here): the caller then fsyncs each file.
    Raises OSError when a syncfs failed; which file's data was lost is then unknown, so the
    caller must treat every file of the batch as lost (never sync again and acknowledge, see
    `commit`).
    """
    if len(landings) < 2 or _syncfs is None:
        return False
    fds_by_device: dict[int, int] = {}
    for fd in {landing.dir_fd for landing in landings}:  # files of a batch share folders
        fds_by_device.setdefault(os.fstat(fd).st_dev, fd)
    for fd in fds_by_device.values():
        libc.check(_syncfs(fd))
    return True


# How much data that is not the batch's a syncfs may write before one fsync per file is the
# cheaper way. Measured here (files' writeback already started): 32 x 200 KiB commit in 8-17 ms
# with syncfs, 11-20 ms with an fsync each; with 50 MiB of other dirty data syncfs takes 40 ms,
# with 800 MiB (8 x 1.5 MiB frames) 466 ms against 6.7 ms.
SYNCFS_SLACK_BYTES = 8 << 20


def syncfs_pays_off(batch_bytes: int, dirty: int | None) -> bool:
    """Whether one syncfs is cheaper than an fsync per file, given the machine's dirty data.

    syncfs writes back every dirty page of the filesystem, not only the batch's: with other
    writers on it (on one machine, the cameras' ring buffers: up to ~800 MiB dirty at 6 x 30
    fps), each batch paid for their data too, and a live run stalled for a second or more.
    `dirty` counts the whole machine (the kernel keeps no cheap per-filesystem count), so on
    a busy machine this errs towards an fsync per file: slower for bulk, never a stall.
    """
    return dirty is None or dirty <= batch_bytes + SYNCFS_SLACK_BYTES


def dirty_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of page cache waiting to be written or being written (Dirty + Writeback)."""
    total = 0
    try:
        # One read of the whole file (~1.5 KiB): open() would add an fstat, an ioctl, a
        # seek and more reads, on every batch.
        fd = os.open(meminfo, os.O_RDONLY | os.O_CLOEXEC)
        try:
            text = os.read(fd, 1 << 16)
        finally:
            os.close(fd)
        for line in text.splitlines():
            if line.startswith((b"Dirty:", b"Writeback:")):
                total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return total


def landed_checksum(fd: int) -> bytes | None:
    """The checksum this file was verified against when it landed, if the receiver recorded it."""
    try:
        return os.getxattr(fd, CHECKSUM_XATTR)
    except OSError:
        return None


def _same_content(dir_fd: int, name: str, size: int, checksum: bytes) -> bool:
    try:
        fd = os.open(name, READ_EXISTING_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False  # a symlink or unreadable entry is never "the same file"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            return False
        hasher = new_hasher()
        while chunk := os.read(fd, 1 << 20):
            hasher.update(chunk)
        return hasher.digest() == checksum
    finally:
        os.close(fd)


def remove_stale_temps(root: Path, *, only_pids: set[int] | None = None) -> int:
    """Remove temporaries under `root` left by dead writers; returns how many were removed.

    With `only_pids`, remove only those pids' temporaries (a supervisor cleaning up after a
    worker it saw die); otherwise remove those whose pid is no longer a running process, so a
    receiver sharing the folder keeps its in-progress files.
    """
    removed = 0
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        for filename in filenames:
            match = _TEMP_NAME.match(filename)
            if not match:
                continue
            pid = int(match["pid"])
            dead = pid in only_pids if only_pids is not None else not _pid_alive(pid)
            if dead:
                try:
                    os.unlink(os.path.join(folder, filename))
                    removed += 1
                except FileNotFoundError:
                    pass
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(folder, d))]
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker whose receiver died too stays a zombie until init reaps it; signal 0
    # still finds it, but it writes nothing any more and its temporaries must go.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust the signal
    return state not in (b"Z", b"X")


def replace_file(root: LandingRoot, dir_fd: int, name: str, data: bytes) -> None:
    """Write `name` in the open folder `dir_fd` atomically and durably, replacing any old one.

    For the receiver's own files (a manifest), which are rewritten as they grow: temp file,
    fsync, rename over the old name, folder fsync. A crash leaves the old or the new file whole,
    never a mix; the temporary carries the usual prefix so it is cleaned up like any other.
    """
    temp = root.temp_name()
    fd = os.open(
        temp,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o644,
        dir_fd=dir_fd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    try:
        os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)
