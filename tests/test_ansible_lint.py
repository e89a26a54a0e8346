"""The Ansible side stays lint-clean: ansible-lint (production profile) and yamllint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if not (BIN / tool).exists():
        pytest.skip(f"{tool} is not installed in this venv (pip install -e '.[test]')")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    return subprocess.run(
        [str(BIN / tool), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.timeout(300)
def test_ansible_lint_production_profile_is_clean() -> None:
    result = run("ansible-lint", "--offline", "--profile", "production", "roles/", "playbooks/")
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_is_clean() -> None:
    result = run("yamllint", "--strict", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean_on_the_ansible_plugins() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "plugins", "roles", "tests/fleet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_trigger_module_and_fleet_filter_are_documented() -> None:
    module = run("ansible-doc", "-M", "plugins/modules", "camxfer_trigger")
    assert module.returncode == 0 and "ERROR" not in module.stderr, module.stderr
    assert "fail_on_incomplete" in module.stdout and "RETURN VALUES" in module.stdout
    filter_doc = run("ansible-doc", "-t", "filter", "camxfer_fleet")
    assert filter_doc.returncode == 0 and "ERROR" not in filter_doc.stderr, filter_doc.stderr
