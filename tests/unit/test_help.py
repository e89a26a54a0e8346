"""Every subcommand's --help is enough at 3 a.m.: each option says its default, and there are
examples. The help is read as a user gets it (`camxfer COMMAND --help` in a real process) and,
option by option, from the parser that prints it."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from camxfer.cli import COMMANDS, build_parser
from tests.conftest import REPO


def subcommand_parser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_examples_and_exits_0(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "camxfer", name, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "examples:" in done.stdout or "example:" in done.stdout
    assert f"camxfer {name}" in done.stdout.split("examples:")[-1]  # a real command line


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_that_takes_a_value_states_its_default(name: str) -> None:
    missing = []
    for action in subcommand_parser(name)._actions:
        takes_value = action.option_strings and action.nargs != 0
        if not takes_value or action.required or action.help == argparse.SUPPRESS:
            continue
        text = (action.help or "").lower()
        if "default" not in text and "required" not in text:
            missing.append("/".join(action.option_strings))
    assert not missing, f"camxfer {name}: no default in the help of {', '.join(missing)}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_explained(name: str) -> None:
    unexplained = [
        "/".join(action.option_strings) or action.dest
        for action in subcommand_parser(name)._actions
        if not action.help or len(action.help) < 10
    ]
    assert not unexplained, f"camxfer {name}: no help text for {', '.join(unexplained)}"
