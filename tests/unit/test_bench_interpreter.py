"""The benchmark's lean interpreter (`bench.interpreter`): it finds the .pth files that run code
at start-up, and the venv it makes imports camxfer and its dependencies without running any
of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.interpreter import ROOT, make_lean_venv, start_up_hooks

PROBE = """
import json, sys
import camxfer.cli, xxhash, zmq
print(json.dumps({
    "camxfer": camxfer.cli.__file__,
    "hooks": sorted(m for m in sys.modules if "editable" in m or "distutils_hack" in m),
    "site_packages_on_path": any(p.endswith("site-packages") for p in sys.path),
}))
"""


def test_only_pth_files_with_import_lines_are_start_up_hooks(tmp_path: Path) -> None:
    (tmp_path / "paths.pth").write_text("/some/folder\n# a comment\n")
    (tmp_path / "__editable__.pkg-1.0.pth").write_text("import finder; finder.install()\n")
    (tmp_path / "tabbed.pth").write_text("/x\nimport\tsomething\n")
    (tmp_path / "notes.txt").write_text("import this\n")
    hooks = start_up_hooks([str(tmp_path), str(tmp_path / "absent")])
    assert [p.name for p in hooks] == ["__editable__.pkg-1.0.pth", "tabbed.pth"]


def test_the_lean_venv_imports_camxfer_from_the_checkout_without_any_hook(
    tmp_path: Path,
) -> None:
    python = make_lean_venv(tmp_path / "python")
    assert make_lean_venv(tmp_path / "python") == python  # a second call reuses it
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [str(python), "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert Path(seen["camxfer"]).resolve() == ROOT / "camxfer" / "cli" / "__init__.py"
    assert seen["hooks"] == []
    assert seen["site_packages_on_path"]
    lean_site = next((tmp_path / "python" / "lib").glob("python3*/site-packages"))
    assert start_up_hooks([str(lean_site)]) == []


def test_the_probe_sees_the_hooks_of_an_interpreter_that_has_them(tmp_path: Path) -> None:
    """The control: under this interpreter, the same probe names its hooks' modules."""
    hooks = start_up_hooks()
    if not any(hook.name.startswith("__editable__") for hook in hooks):
        pytest.skip("camxfer is installed as a wheel here: no hook to see")
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout)["hooks"]
