"""Re-check landed frames against their manifests: what `camxfer verify` reports.

Responsible for: finding every manifest under a folder (that folder, or any below it),
re-hashing each listed file (XXH3-128, the checksum the wire protocol uses) and reporting,
per manifest, files missing, of another size, with other bytes, or present but not listed,
and manifests or folders that cannot be read. A file belongs to the nearest manifest in its
folder or above it (within the folder checked); a file no manifest covers is reported too.
Not responsible for: printing (`camxfer.cli.verify`) or repairing anything.

Hidden files are not frames (receiver temporaries, the manifest itself) and are left out.
Symlinks are never followed: one where a frame should be is reported, not read through.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camxfer.errors import UnsafePathError, UsageError
from camxfer.manifest import MANIFEST_NAME, ManifestError, load_manifest
from camxfer.protocol import new_hasher
from camxfer.recv.landing import READ_EXISTING_FLAGS, split_relative

_READ_BYTES = 1 << 20
MAX_SHOWN = 1000  # problems listed per manifest; the count stays exact

# Problem kinds, in the order a report lists them.
KINDS = ("unreadable", "missing", "size", "checksum", "not-a-file", "unsafe", "extra", "uncovered")


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    name: str  # relative to the manifest's folder ('' for the manifest itself)
    detail: str


@dataclass
class FolderCheck:
    """One manifest's folder and what was found wrong in it."""

    folder: Path
    rel: str  # relative to the folder checked ('.' for itself)
    listed: int = 0  # files the manifest lists
    bytes: int = 0
    event: str | None = None
    camera: str | None = None
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, kind: str, name: str, detail: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_SHOWN:
            self.problems.append(Problem(kind, name, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "rel": self.rel,
            "ok": self.ok,
            "event": self.event,
            "camera": self.camera,
            "files": self.listed,
            "bytes": self.bytes,
            "problems": self.problem_count,
            "details": [
                {"kind": p.kind, "name": p.name, "detail": p.detail} for p in self.problems
            ],
        }


@dataclass
class VerifyReport:
    root: Path
    folders: list[FolderCheck] = field(default_factory=list)
    uncovered: FolderCheck | None = None  # files no manifest covers

    @property
    def checks(self) -> list[FolderCheck]:
        return self.folders + ([self.uncovered] if self.uncovered else [])

    @property
    def problem_count(self) -> int:
        return sum(check.problem_count for check in self.checks)

    @property
    def ok(self) -> bool:
        return bool(self.folders) and self.problem_count == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "root": str(self.root),
            "manifests": len(self.folders),
            "files": sum(check.listed for check in self.folders),
            "problems": self.problem_count,
            "folders": [check.to_json() for check in self.checks],
        }


def verify(root: Path) -> VerifyReport:
    """Check every manifest at or below `root`; UsageError when `root` is not a folder."""
    root = Path(root)
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        raise UsageError(f"{root} does not exist.") from None
    except OSError as exc:
        raise UsageError(f"cannot look at {root}: {exc.strerror}.") from None
    if stat.S_ISLNK(info.st_mode):  # never followed, as inside: say so, not "not a folder"
        raise UsageError(
            f"{root} is a symlink (to {os.readlink(root)}); give the folder it leads to."
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{root} is not a folder; give a destination folder.")
    holders, files, unlisted = _walk(root)
    report = VerifyReport(root)
    checks: dict[Path, FolderCheck] = {}
    listed: dict[Path, set[str]] = {}
    for folder in sorted(holders):
        check = FolderCheck(folder, _rel(folder, root))
        report.folders.append(check)
        checks[folder] = check
        listed[folder] = _check_manifest(folder, check)
    for path, kind in files:
        owner = _owner(path.parent, root, holders)
        if owner is None:
            if report.uncovered is None:
                report.uncovered = FolderCheck(root, ".")
            report.uncovered.add("uncovered", _rel(path, root), "no manifest covers this file")
            continue
        rel = path.relative_to(owner).as_posix()
        # An unreadable manifest lists nothing: that one problem says it all.
        if rel not in listed[owner] and _readable(checks[owner]):
            detail = "present but not in the manifest"
            if kind != "file":
                detail += f" ({kind})"
            checks[owner].add("extra", rel, detail)
    for folder, why in unlisted:
        # What it holds is unknown, frames and manifests alike: never "all match".
        owner = _owner(folder.parent, root, holders) if folder != root else None
        if owner is None:
            report.uncovered = report.uncovered or FolderCheck(root, ".")
            report.uncovered.add("unreadable", _rel(folder, root), f"cannot list it: {why}")
        else:
            checks[owner].add("unreadable", _rel(folder, owner), f"cannot list it: {why}")
    if not report.folders:
        report.uncovered = report.uncovered or FolderCheck(root, ".")
        report.uncovered.add("missing", MANIFEST_NAME, f"no {MANIFEST_NAME} at or below {root}")
    return report


def _readable(check: FolderCheck) -> bool:
    return not any(p.kind == "unreadable" for p in check.problems)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."


def _walk(root: Path) -> tuple[set[Path], list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Folders holding a manifest, every non-hidden entry that is not a folder, and the
    folders that could not be listed (with why)."""
    holders: set[Path] = set()
    files: list[tuple[Path, str]] = []
    unlisted: list[tuple[Path, str]] = []

    def cannot_list(exc: OSError) -> None:  # os.walk would pass over the folder in silence
        unlisted.append((Path(exc.filename), exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=cannot_list, followlinks=False):
        folder = Path(dirpath)
        for name in filenames + dirnames:
            path = folder / name
            if name == MANIFEST_NAME:
                holders.add(folder)
                continue
            if name.startswith("."):
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                continue
            kind = "file" if stat.S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode) else "special"
            files.append((path, kind))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return holders, files, unlisted


def _owner(folder: Path, root: Path, holders: set[Path]) -> Path | None:
    while True:
        if folder in holders:
            return folder
        if folder == root:
            return None
        folder = folder.parent


def _check_manifest(folder: Path, check: FolderCheck) -> set[str]:
    """Check the files of one manifest; returns the names it lists."""
    try:
        manifest = load_manifest(folder)
    except ManifestError as exc:
        check.add("unreadable", MANIFEST_NAME, str(exc))
        return set()
    check.listed = len(manifest.files)
    check.bytes = manifest.bytes
    check.event, check.camera = manifest.event, manifest.camera
    for name in sorted(manifest.files):
        entry = manifest.files[name]
        try:
            parts = split_relative(name, "manifest entry")
            if name.startswith("/") or not parts:
                raise UnsafePathError(f"manifest entry {name!r} is not a relative path")
        except UnsafePathError as exc:
            check.add("unsafe", name, str(exc))
            continue
        problem = _check_file(folder, parts, entry.size, entry.checksum)
        if problem is not None:
            check.add(problem[0], name, problem[1])
    return set(manifest.files)


def _check_file(folder: Path, parts: list[str], size: int, checksum: str) -> tuple[str, str] | None:
    path = folder.joinpath(*parts)
    for depth in range(1, len(parts)):
        if folder.joinpath(*parts[:depth]).is_symlink():
            return "not-a-file", "a folder on its path is a symlink"
    try:
        fd = os.open(path, READ_EXISTING_FLAGS)
    except FileNotFoundError:
        return "missing", "listed in the manifest, not found"
    except OSError as exc:
        return "not-a-file", f"cannot open it: {exc.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not-a-file", "not a regular file"
        if info.st_size != size:
            return "size", f"{info.st_size} bytes, the manifest says {size}"
        hasher = new_hasher()
        while chunk := os.read(fd, _READ_BYTES):
            hasher.update(chunk)
        if hasher.hexdigest() != checksum:
            return "checksum", "content differs from the manifest's checksum"
        return None
    except OSError as exc:
        return "not-a-file", f"cannot read it: {exc.strerror}"
    finally:
        os.close(fd)
