"""The fault tests' checker: after a run, judge what landed against what the sender said.

Jepsen style (RELIABILITY-NOTES §2): the fault tests do whatever damage they do, then hand
this module the source frames (their expected bytes), the sender's `--json-stats` report and
the landed folder, and it checks the invariant every fault must keep:

- every frame the sender counted as landed (acknowledged) is there under its final name;
- every file under a final name is byte-identical to a frame of the source (so nothing torn,
  short, mixed, renamed or copied to a `.1` name ever lands);
- no receiver temporary (`.camxfer-tmp-*`) or other hidden file is left behind, apart from
  the run manifests (`.camxfer-manifest.json`), each of which may list only files that are
  there whole (its size and XXH3-128 match);
- with `complete=True`, every selected frame landed.

A sender killed before it could print its report has no history: its outcome is unknown, so
only the last two rules apply to it (what landed is whole and nothing is left over).
Not here: starting processes or injecting faults; each test module does that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from camxfer.manifest import MANIFEST_NAME, ManifestError, parse_manifest
from camxfer.protocol import new_hasher

TEMP_PREFIX = ".camxfer-tmp-"  # camxfer.recv.landing.TEMP_PREFIX


def manifest_problems(path: Path) -> list[str]:
    """What is wrong with a landed manifest: unreadable, or listing a file not there whole."""
    try:
        manifest = parse_manifest(path.read_bytes())
    except ManifestError as exc:
        return [f"{path.name} in {path.parent.name} is unreadable: {exc}"]
    problems = []
    for name, entry in manifest.files.items():
        listed = path.parent / name
        hasher = new_hasher()
        with contextlib.suppress(OSError):
            hasher.update(listed.read_bytes())
        if not listed.is_file() or hasher.hexdigest() != entry.checksum:
            problems.append(f"{path.name} lists {name}, which is not there whole")
    return problems


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot(folder: Path, pattern: str = "*") -> dict[str, set[str]]:
    """{relative name: {sha256}} of the regular files under `folder` (the expected frames)."""
    return {
        path.relative_to(folder).as_posix(): {sha256_path(path)}
        for path in sorted(folder.rglob(pattern))
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".")
    }


def landed_files(folder: Path) -> dict[str, str]:
    """{relative name: sha256} of every regular file under `folder`, hidden ones included."""
    found: dict[str, str] = {}
    if not folder.exists():
        return found
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath, name)
            if path.is_symlink():
                found[path.relative_to(folder).as_posix()] = "symlink"
                continue
            # A temporary removed while we looked is skipped: the next look decides.
            with contextlib.suppress(FileNotFoundError):
                found[path.relative_to(folder).as_posix()] = sha256_path(path)
    return found


@dataclass
class Verdict:
    """What the checker found; `problems` is empty when the run kept the invariant."""

    landed: dict[str, str]
    acked: set[str] | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def assert_ok(self, context: str = "") -> None:
        assert self.ok, (context + "\n" if context else "") + "\n".join(self.problems[:30])


def acked_names(stats: Mapping, selected: Iterable[str]) -> set[str]:
    """The frames a sender's report counts as landed: the selection minus what it skipped."""
    skipped = {entry["name"] for entry in stats.get("skipped", [])}
    return set(selected) - skipped


def check(
    expected: Mapping[str, set[str] | str],
    landed_dir: Path,
    stats: Mapping | None = None,
    *,
    selected: Iterable[str] | None = None,
    complete: bool = False,
) -> Verdict:
    """Judge `landed_dir` against `expected` ({name: allowed sha256(s)}) and the report.

    `selected` is what the sender was asked to send (default: every expected name); a
    report's skipped names are allowed to be absent, every other selected one must be there
    and the report's `files` must count exactly those.
    """
    allowed = {name: {v} if isinstance(v, str) else set(v) for name, v in expected.items()}
    chosen = set(allowed if selected is None else selected)
    landed = landed_files(landed_dir)
    problems: list[str] = []
    for name, digest in sorted(landed.items()):
        base = name.rsplit("/", 1)[-1]
        if base.startswith(TEMP_PREFIX):
            problems.append(f"temporary left behind: {name}")
        elif base == MANIFEST_NAME:
            problems.extend(manifest_problems(landed_dir / name))
        elif base.startswith("."):
            problems.append(f"hidden file left behind: {name}")
        elif name not in allowed:
            problems.append(f"landed a file that is no source frame: {name}")
        elif digest not in allowed[name]:
            problems.append(f"{name} landed with bytes no source version had (torn or corrupt)")
    acked = None
    if stats is not None:
        acked = acked_names(stats, chosen)
        if stats.get("files") != len(acked):
            problems.append(
                f"report counts {stats.get('files')} files landed, but {len(acked)} of the "
                f"{len(chosen)} selected are not listed as skipped"
            )
        lost = sorted(acked - set(landed))
        if lost:
            problems.append(f"{len(lost)} acknowledged frame(s) not landed: {lost[:10]}")
    if complete:
        absent = sorted(chosen - set(landed))
        if absent:
            problems.append(f"{len(absent)} selected frame(s) never landed: {absent[:10]}")
    return Verdict(landed, acked, problems)


def settled(
    expected: Mapping[str, set[str] | str],
    landed_dir: Path,
    stats: Mapping | None = None,
    *,
    timeout: float = 15.0,
    **kwargs: object,
) -> Verdict:
    """`check`, retried until it passes or `timeout` runs out.

    A receiver removes the temporary of a connection cut mid-file when its session thread
    notices the cut (EOF, RST or its deadline), which is shortly after the sender gave up on
    it; the final verdict is taken once things are idle.
    """
    deadline = time.monotonic() + timeout
    while True:
        verdict = check(expected, landed_dir, stats, **kwargs)
        if verdict.ok or time.monotonic() > deadline:
            return verdict
        time.sleep(0.1)
