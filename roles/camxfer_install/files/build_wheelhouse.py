#!/usr/bin/env python3
"""Build the camxfer wheelhouse on the Ansible controller: camxfer's wheel and every dependency's.

Run by the camxfer_install role (once per play, on the controller). The camxfer wheel is built
from a clean copy of the source (so stale build/ or egg-info folders never leak into it) with
SOURCE_DATE_EPOCH fixed, which makes it byte-identical for identical sources; dependencies are
taken from the existing wheelhouse when it satisfies them, else from the package index. Only
files whose bytes differ are replaced in --out, so a second deploy copies nothing to the hosts.

The wheels are also packed into one reproducible tar (ARCHIVE, sorted, fixed owner, mode and
time) so that a deploy copies and checks one file per host instead of one per wheel.

Prints one JSON object: {"changed", "wheel", "sha256", "archive", "archive_sha256", "python",
"files": {name: sha256}}.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SOURCE_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "README.md", "LICENSE", "MANIFEST.in")
PACKAGE = "camxfer"
ARCHIVE = "wheelhouse.tar"
# 1980-01-01, the earliest time a zip file can hold; any fixed value makes the wheel reproducible.
DEFAULT_EPOCH = "315532800"


def sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def pip(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def fail(message: str, result: subprocess.CompletedProcess[str] | None = None) -> None:
    if result is not None:
        message += f"\n{result.stdout}{result.stderr}"
    print(message, file=sys.stderr)
    raise SystemExit(1)


def copy_source(source: Path, into: Path) -> None:
    for name in SOURCE_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, into / name)
    shutil.copytree(
        source / PACKAGE, into / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


def build(source: Path, out: Path, epoch: str) -> dict:
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch, "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="camxfer-wheelhouse-") as temp:
        src, fresh = Path(temp) / "src", Path(temp) / "wheels"
        src.mkdir()
        copy_source(source, src)
        result = pip(["wheel", "--no-deps", "--wheel-dir", str(fresh), str(src)], env)
        if result.returncode != 0:
            fail(f"building the {PACKAGE} wheel from {source} failed:", result)
        wheels = sorted(fresh.glob(f"{PACKAGE}-*.whl"))
        if len(wheels) != 1:
            fail(f"expected one {PACKAGE} wheel, got {[w.name for w in wheels]}")
        wheel = wheels[0]
        deps = ["wheel", "--wheel-dir", str(fresh), "--find-links", str(fresh), str(wheel)]
        # Offline first, from what the wheelhouse already has: fast, and versions stay put.
        result = pip([*deps[:-1], "--no-index", "--find-links", str(out), deps[-1]], env)
        if result.returncode != 0:
            result = pip(deps, env)
            if result.returncode != 0:
                fail("fetching the dependencies' wheels failed:", result)
        return sync(fresh, out, wheel.name)


def sync(fresh: Path, out: Path, wheel: str) -> dict:
    """Make `out` hold exactly the wheels of `fresh`, touching only files that differ."""
    changed = False
    files = {}
    for path in sorted(fresh.glob("*.whl")):
        digest = files[path.name] = sha256(path)
        target = out / path.name
        if target.is_file() and sha256(target) == digest:
            continue
        temp = out / f".{path.name}.tmp"
        shutil.copyfile(path, temp)
        os.chmod(temp, 0o644)
        temp.replace(target)
        changed = True
    for path in out.glob("*.whl"):
        if path.name not in files:
            path.unlink()
            changed = True
    archive = out / ARCHIVE
    changed = pack(out, sorted(files), archive) or changed
    return {
        "changed": changed,
        "wheel": wheel,
        "sha256": files[wheel],
        "archive": ARCHIVE,
        "archive_sha256": sha256(archive),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "files": files,
    }


def pack(folder: Path, names: list[str], archive: Path) -> bool:
    """Write the wheels `names` of `folder` into `archive` reproducibly; True if it changed."""
    temp = archive.with_name(f".{archive.name}.tmp")
    with tarfile.open(temp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(folder / name, arcname=name)
            info.mtime, info.mode = 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(folder / name, "rb") as stream:
                tar.addfile(info, stream)
    if archive.is_file() and sha256(archive) == sha256(temp):
        temp.unlink()
        return False
    temp.replace(archive)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="camxfer source checkout")
    parser.add_argument("--out", type=Path, required=True, help="wheelhouse folder to update")
    parser.add_argument("--epoch", default=os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    args = parser.parse_args()
    source = args.source.resolve()
    if not (source / "pyproject.toml").is_file() or not (source / PACKAGE).is_dir():
        fail(f"{source} is not a camxfer checkout (no pyproject.toml and {PACKAGE}/ there)")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two plays building at once must not interleave
        print(json.dumps(build(source, args.out.resolve(), args.epoch)))


if __name__ == "__main__":
    main()
