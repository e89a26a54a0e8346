"""Safe emptying of destination folders: deciding what `camxfer clear` may remove, and removing it.

Responsible for: refusing dangerous destinations (/, the home folder, system folders and their
parents, non-folders, symlinks), counting what would go, and deleting through directory file
descriptors (openat/unlinkat with O_NOFOLLOW), so a symlink inside a destination is removed as
a link and never followed out of it, and a folder swapped for a symlink mid-way is not entered.
Not responsible for: asking the operator or printing (`camxfer.cli.clear`), or reading
camera_config.json (`camxfer.fleet.config`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from camxfer.errors import ConfigError, UsageError
from camxfer.fleet.config import FleetConfig

# Never emptied themselves, and neither is any folder that holds one of them (/, /usr, ...).
# Folders below them stay allowed: /var/lib/camxfer and /srv/camxfer are where frames live.
PROTECTED_FOLDERS: tuple[PurePosixPath, ...] = tuple(
    PurePosixPath(folder)
    for folder in (
        "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
        "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys",
        "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share",
        "/var", "/var/cache", "/var/lib", "/var/log", "/var/tmp",
    )
)  # fmt: skip

# O_NOFOLLOW: opening a symlink fails (ELOOP) instead of entering wherever it points.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class ClearTarget:
    """Everything inside `folder`, or with `camera` set only the folders `folder/*/camera`.

    `identity` is the (st_dev, st_ino) seen when the folder was checked; clearing verifies the
    folder it opens is still that one.
    """

    folder: Path
    identity: tuple[int, int]
    camera: str | None = None

    def describe(self) -> str:
        if self.camera is None:
            return f"everything inside {self.folder} (the folder itself is kept)"
        return f"camera {self.camera}'s folders {self.folder}/*/{self.camera}"


@dataclass
class Tally:
    """How many entries of each kind were (or would be) removed."""

    files: int = 0
    folders: int = 0
    links: int = 0

    @property
    def total(self) -> int:
        return self.files + self.folders + self.links

    def __str__(self) -> str:
        return ", ".join(
            f"{count} {noun}{'' if count == 1 else 's'}"
            for count, noun in (
                (self.files, "file"),
                (self.folders, "folder"),
                (self.links, "symlink"),
            )
        )


@dataclass
class ClearOutcome:
    target: ClearTarget
    removed: Tally
    problems: list[str] = field(default_factory=list)


def protected_reason(path: PurePosixPath, home: PurePosixPath) -> str | None:
    """Why the absolute, normalised `path` must never be emptied, or None if it may be."""
    if path == path.parent:
        return "it is the root folder"
    if path == home:
        return "it is your home folder"
    if path in home.parents:
        return f"it holds your home folder {home}"
    for folder in PROTECTED_FOLDERS:
        if path == folder:
            return f"it is the system folder {folder}"
        if path in folder.parents:
            return f"it holds the system folder {folder}"
    return None


def check_destination(path: Path, *, home: Path) -> ClearTarget:
    """The target for emptying `path`, or UsageError saying why it is refused."""
    absolute = Path(path).absolute()
    refusal = f"Refusing to clear {path}"
    # Check both the path as written and where it really leads (a parent may be a symlink).
    for candidate, home_candidate in (
        (os.path.normpath(absolute), os.path.normpath(home.absolute())),
        (os.path.realpath(absolute), os.path.realpath(home)),
    ):
        reason = protected_reason(PurePosixPath(candidate), PurePosixPath(home_candidate))
        if reason:
            raise UsageError(f"{refusal}: {reason}.")
    try:
        info = os.lstat(absolute)
    except FileNotFoundError:
        raise UsageError(f"{refusal}: it does not exist.") from None
    except OSError as exc:
        raise UsageError(f"{refusal}: cannot look at it: {exc.strerror}.") from None
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(
            f"{refusal}: it is a symlink (to {os.readlink(absolute)}); "
            "give the real folder if that is what you mean."
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{refusal}: it is not a folder.")
    return ClearTarget(folder=absolute, identity=(info.st_dev, info.st_ino))


def targets_for_camera(config: FleetConfig, name: str, *, home: Path) -> list[ClearTarget]:
    """The folders `<dest_path>/*/<name>` of one camera (other cameras may share dest_path)."""
    camera = config.camera(name)
    if camera.dest_path is None:
        raise ConfigError(
            f"{config.path}: camera {name!r}, field 'dest_path': missing, "
            "so there is nothing to clear for it."
        )
    target = check_destination(camera.dest_path, home=home)
    return [ClearTarget(target.folder, target.identity, camera=name)]


def targets_for_all(config: FleetConfig, *, home: Path) -> list[ClearTarget]:
    """Every distinct dest_path of the config, each once; all are checked before any is used."""
    targets: list[ClearTarget] = []
    for camera in config.cameras:
        if camera.dest_path is None:
            raise ConfigError(
                f"{config.path}: camera {camera.name!r}, field 'dest_path': missing, "
                "so --all cannot clear it."
            )
        target = check_destination(camera.dest_path, home=home)
        if all(target.identity != seen.identity for seen in targets):
            targets.append(target)
    # A dest_path inside another one is emptied with it; emptying it again would fail.
    real = {target: Path(os.path.realpath(target.folder)) for target in targets}
    return [
        target
        for target in targets
        if not any(real[other] in real[target].parents for other in targets)
    ]


def survey(target: ClearTarget) -> Tally:
    """Count what `clear(target)` would remove, touching nothing."""
    return _process(target, remove=False).removed


def clear(target: ClearTarget) -> ClearOutcome:
    """Remove the target's entries; carries on past failures and lists them in the outcome."""
    return _process(target, remove=True)


def _process(target: ClearTarget, *, remove: bool) -> ClearOutcome:
    outcome = ClearOutcome(target, Tally())
    try:
        root_fd = os.open(target.folder, _DIR_FLAGS)
    except OSError as exc:
        outcome.problems.append(f"{target.folder}: cannot open it: {exc.strerror}")
        return outcome
    try:
        info = os.fstat(root_fd)
        if (info.st_dev, info.st_ino) != target.identity:
            outcome.problems.append(
                f"{target.folder}: is no longer the folder that was checked; left alone"
            )
        elif target.camera is None:
            _empty(root_fd, str(target.folder), info.st_dev, outcome, remove)
        else:
            _remove_camera(root_fd, target.camera, info.st_dev, outcome, remove)
    finally:
        os.close(root_fd)
    return outcome


def _remove_camera(
    root_fd: int, camera: str, device: int, outcome: ClearOutcome, remove: bool
) -> None:
    """Remove `<root>/<ball_id>/<camera>` for every ball folder; other cameras stay."""
    root = str(outcome.target.folder)
    for ball in _names(root_fd, root, outcome):
        ball_shown = os.path.join(root, ball)
        info = _lstat(root_fd, ball, ball_shown, outcome)
        if info is None or not stat.S_ISDIR(info.st_mode) or info.st_dev != device:
            continue  # a symlinked or mounted ball folder is not followed
        ball_fd = _open_dir(root_fd, ball, ball_shown, info, outcome)
        if ball_fd is None:
            continue
        try:
            found = _lstat(ball_fd, camera, os.path.join(ball_shown, camera), outcome)
            if found is not None and (stat.S_ISDIR(found.st_mode) or stat.S_ISLNK(found.st_mode)):
                _remove_entry(ball_fd, camera, ball_shown, device, outcome, remove)
        finally:
            os.close(ball_fd)


def _empty(dir_fd: int, shown: str, device: int, outcome: ClearOutcome, remove: bool) -> None:
    """Remove (or count) everything inside the open folder `dir_fd`."""
    for name in _names(dir_fd, shown, outcome):
        _remove_entry(dir_fd, name, shown, device, outcome, remove)


def _remove_entry(
    parent_fd: int, name: str, parent_shown: str, device: int, outcome: ClearOutcome, remove: bool
) -> None:
    shown = os.path.join(parent_shown, name)
    info = _lstat(parent_fd, name, shown, outcome)
    if info is None:
        return
    try:
        if stat.S_ISDIR(info.st_mode):
            if info.st_dev != device:
                outcome.problems.append(
                    f"{shown}: left alone, it is another filesystem mounted here"
                )
                return
            child_fd = _open_dir(parent_fd, name, shown, info, outcome)
            if child_fd is None:
                return
            try:
                _empty(child_fd, shown, device, outcome, remove)
            finally:
                os.close(child_fd)
            if remove:
                os.rmdir(name, dir_fd=parent_fd)
            outcome.removed.folders += 1
        else:
            # unlinkat on a symlink removes the link itself, never its target.
            if remove:
                os.unlink(name, dir_fd=parent_fd)
            if stat.S_ISLNK(info.st_mode):
                outcome.removed.links += 1
            else:
                outcome.removed.files += 1
    except FileNotFoundError:
        pass  # already gone (removed by someone else meanwhile): nothing left to do
    except OSError as exc:
        outcome.problems.append(f"{shown}: {exc.strerror}")


def _names(dir_fd: int, shown: str, outcome: ClearOutcome) -> list[str]:
    try:
        with os.scandir(dir_fd) as entries:
            return sorted(entry.name for entry in entries)
    except OSError as exc:
        outcome.problems.append(f"{shown}: cannot list it: {exc.strerror}")
        return []


def _lstat(dir_fd: int, name: str, shown: str, outcome: ClearOutcome) -> os.stat_result | None:
    """The entry's own metadata (a symlink is not followed); None if it is gone."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None  # removed meanwhile (a receiver's temp file, say): nothing to do
    except OSError as exc:
        outcome.problems.append(f"{shown}: {exc.strerror}")
        return None


def _open_dir(
    parent_fd: int, name: str, shown: str, expected: os.stat_result, outcome: ClearOutcome
) -> int | None:
    """Open a sub-folder without following symlinks, and only if it is the one just looked at."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        outcome.problems.append(f"{shown}: cannot open it: {exc.strerror}")
        return None
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino):
        os.close(fd)
        outcome.problems.append(f"{shown}: replaced while clearing; left alone")
        return None
    return fd
