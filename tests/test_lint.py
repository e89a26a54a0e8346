"""The repository stays ruff-clean and camxfer/ mypy-clean: lint findings and type errors fail
the suite like any other bug (mypy's settings, files included, are in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "camxfer", "tests", "bench"], ["mypy"]],
    ids=["ruff", "mypy"],
)
def test_checker_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
