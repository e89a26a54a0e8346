"""Each role's molecule scenario (roles/<role>/molecule/default), against the netns lab.

The scenarios run on the lab's hosts mcam (camera host) and msto (storage host), which no other
test uses: syntax, prepare (camxfer installed), converge, idempotence (a second converge must
change nothing), verify (assertions on the hosts' real state). By hand, with the lab up
(tests/fleet/netns_lab.sh up): cd roles/camxfer_receiver && molecule test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fleet.helpers import BIN, REPO

pytestmark = pytest.mark.timeout(600)

# In this order: the install scenario starts from fresh hosts; the others find camxfer there.
ROLES = ("camxfer_install", "camxfer_receiver", "camxfer_trigger", "camxfer_frames")


@pytest.mark.parametrize("role", ROLES)
def test_molecule_scenario(role: str, netns_lab: Path, install_vars: dict) -> None:
    if not (BIN / "molecule").exists():
        pytest.skip("molecule is not installed in this venv (pip install -e '.[test]')")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CAMXFER_TEST_SOURCE": install_vars["camxfer_install_source_dir"],
        "CAMXFER_TEST_BUILD_DIR": install_vars["camxfer_install_build_dir"],
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    result = subprocess.run(
        [str(BIN / "molecule"), "test"],
        cwd=REPO / "roles" / role,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    for action in ("converge", "idempotence", "verify"):
        assert f"{action}: Executed: Successful" in output, output[-4000:]
