"""SHA-256 digests of the frames in one folder, to prove that what landed is what was sent.

Responsible for: hashing regular files of one folder (all of them, or the names asked for) and
saying which asked names are missing. Not responsible for: comparing two folders' digests (the
caller holds both sides, e.g. the trigger playbook on the Ansible controller) or walking into
sub-folders.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from camxfer.errors import UsageError

CHUNK = 1 << 20
# Receivers write into hidden temporary names before linking a frame into place; a finished
# frame is never hidden, so hidden entries are not frames.
HIDDEN_PREFIX = "."


def check_name(name: str) -> str:
    """A file name inside the folder: no separators, not '.', '..' or empty."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UsageError(f"{name!r} is not a plain file name (no '/', not '.' or '..').")
    return name


def sha256_file(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def digest_folder(
    folder: Path, names: Iterable[str] | None = None, *, missing_ok: bool = False
) -> dict[str, str | None]:
    """{name: sha256 hex} of the frames in `folder`, sorted by name.

    With `names`, exactly those names, a missing one (or one that is not a regular file)
    mapping to None. Without, every regular, non-hidden file. A folder that does not exist is
    an error, unless `missing_ok` (then every name is missing, or the result is empty).
    """
    asked = None if names is None else sorted({check_name(name) for name in names})
    folder = Path(folder)
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        if missing_ok:
            return {name: None for name in asked or ()}
        raise UsageError(f"folder {folder} does not exist.") from None
    except OSError as exc:
        raise UsageError(f"cannot look at {folder}: {exc.strerror}.") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{folder} is not a folder.")
    if asked is None:
        try:
            asked = sorted(
                entry.name
                for entry in os.scandir(folder)
                if not entry.name.startswith(HIDDEN_PREFIX) and entry.is_file(follow_symlinks=False)
            )
        except OSError as exc:
            raise UsageError(f"cannot list {folder}: {exc.strerror}.") from None
    result: dict[str, str | None] = {}
    for name in asked:
        path = folder / name
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                result[name] = None
                continue
            result[name] = sha256_file(path)
        except FileNotFoundError:
            result[name] = None
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}.") from None
    return result
