"""Fixtures of the fleet tests: real Ansible runs, on this machine and on a netns host lab.

Everything is real: playbooks run through ansible-runner, the package is built into a
wheelhouse and installed into venvs, services run as processes. What the fixtures own they tear
down, also when a test fails: the lab (tests/fleet/netns_lab.sh) is brought down, leftovers of
an earlier run first.

The camxfer source is snapshotted once per session, so a checkout being edited while the tests
run cannot make a second deploy look changed.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.helpers import (
    BIN,
    LAB_LOCK,
    REPO,
    lab,
    lab_missing,
    write_lab_inventory,
)


@pytest.fixture(autouse=True)
def _needs_ansible() -> None:
    if not (BIN / "ansible-playbook").exists():
        pytest.skip("ansible-core is not installed in this venv (pip install -e '.[test]')")


@pytest.fixture(scope="session")
def fleet_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of what the camxfer wheel is built from."""
    source = tmp_path_factory.mktemp("camxfer-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "camxfer", source / "camxfer", ignore=shutil.ignore_patterns("__pycache__")
    )
    return source


@pytest.fixture(scope="session")
def fleet_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The controller's wheelhouse for this session (shared by every deploy)."""
    return tmp_path_factory.mktemp("wheelhouse")


@pytest.fixture(scope="session")
def install_vars(fleet_source: Path, fleet_build_dir: Path) -> dict[str, str]:
    return {
        "camxfer_install_source_dir": str(fleet_source),
        "camxfer_install_build_dir": str(fleet_build_dir),
    }


@pytest.fixture(scope="session")
def netns_lab() -> Iterator[Path]:
    """The lab up for the whole session (hosts cam1, cam2, sto1, mcam, msto); yields the
    inventory folder of cam1, cam2 and sto1. Leftovers of an earlier run are torn down first,
    and the lab always afterwards. Sessions on one machine take turns (a lock file)."""
    missing = lab_missing()
    if missing:
        pytest.skip(missing)
    with open(LAB_LOCK, "w") as lock:
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail("another test session has held the netns lab for 15 minutes")
                time.sleep(1)
        lab("down")
        try:
            up = lab("up")
            assert up.returncode == 0, f"netns lab did not come up:\n{up.stdout}{up.stderr}"
            yield write_lab_inventory()
        finally:
            down = lab("down")
            assert down.returncode == 0, f"netns lab teardown failed:\n{down.stderr}"
