"""Every subcommand answers bad input with one clear error line and exit status 2.

A sweep of invalid values over the flags of every `camxfer` subcommand, each run as a real
process: exit status 2, exactly one `camxfer ...: error:` line naming the problem (argparse
may print its usage above it), never a traceback, and nothing started or written. Config
file errors of `senders`/`receivers` are swept in test_fleet_config_errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(60)

# (argv, a piece of the error line). {src} is an existing folder, {file} an existing file.
CASES: dict[str, tuple[list[str], str]] = {
    "send no args": (["send"], "required"),
    "send port 0": (["send", "--src-dir", "{src}", "--port", "0"], "port must be"),
    "send port text": (["send", "--src-dir", "{src}", "--port", "abc"], "--port"),
    "send port big": (["send", "--src-dir", "{src}", "--port", "70000"], "port must be"),
    "send conns 0": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--conns", "0"],
        "--conns",
    ),
    "send window 0": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--window", "0"],
        "--window",
    ),
    "send retries -1": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--retries", "-1"],
        "--retries",
    ),
    "send ack-timeout 0": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--ack-timeout", "0"],
        "--ack-timeout",
    ),
    "send ack-timeout inf": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--ack-timeout", "inf"],
        "--ack-timeout",
    ),
    "send ack-timeout nan": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--ack-timeout", "nan"],
        "--ack-timeout",
    ),
    "send timeout -5": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--timeout", "-5"],
        "-5",
    ),
    "send lookahead text": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--lookahead", "x"],
        "--lookahead",
    ),
    "send stable-ms -1": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--stable-ms", "-1"],
        "--stable-ms",
    ),
    "send max-files -3": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--max-files", "-3"],
        "--max-files",
    ),
    "send both starts": (
        [
            "send",
            "--src-dir",
            "{src}",
            "--once",
            "--port",
            "1",
            "--start-after",
            "a",
            "--start-at",
            "b",
        ],
        "--start-after or --start-at",
    ),
    "send missing src": (["send", "--src-dir", "{src}/nope", "--port", "1"], "does not exist"),
    "send src is a file": (["send", "--src-dir", "{file}", "--port", "1"], "not a folder"),
    "send unknown flag": (
        ["send", "--src-dir", "{src}", "--once", "--port", "1", "--bogus"],
        "--bogus",
    ),
    "recv no port": (["recv"], "--port"),
    "recv port 0": (["recv", "--port", "0"], "port must be"),
    "recv workers 0": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--workers", "0"],
        "--workers",
    ),
    "recv max-conns 0": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--max-conns", "0"],
        "--max-conns",
    ),
    "recv max-file-size 0": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--max-file-size", "0"],
        "--max-file-size",
    ),
    "recv io-timeout nan": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--io-timeout", "nan"],
        "--io-timeout",
    ),
    "recv io-timeout -1": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--io-timeout", "-1"],
        "--io-timeout",
    ),
    "recv io-timeout 0": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--io-timeout", "0"],
        "--io-timeout",
    ),
    "recv io-timeout inf": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--io-timeout", "inf"],
        "--io-timeout",
    ),
    "recv idle-timeout -1": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--idle-timeout", "-1"],
        "--idle-timeout",
    ),
    "recv idle-timeout text": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--idle-timeout", "soon"],
        "--idle-timeout",
    ),
    "recv out-dir is a file": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--out-dir", "{file}"],
        "--out-dir",
    ),
    "recv out-dir cannot be made": (
        ["recv", "--listen-ip", "127.0.0.1", "--port", "{port}", "--out-dir", "/proc/nope/x"],
        "--out-dir",
    ),
    "trigger nothing to do": (["trigger", "--port", "1"], "--frame-id"),
    "trigger port 0": (["trigger", "--port", "0", "--status", "x"], "port must be"),
    "trigger reply-timeout -1": (
        ["trigger", "--port", "1", "--status", "x", "--reply-timeout", "-1"],
        "--reply-timeout",
    ),
    "generate count -1": (["generate", "--out-dir", "{src}", "--count", "-1"], "--count"),
    "generate fps 0": (["generate", "--out-dir", "{src}", "--live", "--fps", "0"], "--fps"),
    "generate sizes reversed": (
        ["generate", "--out-dir", "{src}", "--min-mb", "3", "--max-mb", "1"],
        "--max-mb",
    ),
    "generate width 0": (["generate", "--out-dir", "{src}", "--width", "0"], "--width"),
    "generate bad camera": (
        ["generate", "--out-dir", "{src}", "--cameras", "../x", "--count", "1"],
        "../x",
    ),
    "generate ring -1": (["generate", "--out-dir", "{src}", "--live", "--ring", "-1"], "--ring"),
    "generate seed text": (["generate", "--out-dir", "{src}", "--seed", "x"], "--seed"),
    "digest no dir": (["digest"], "DIR"),
    "clear nothing": (["clear"], "clear"),
    "service no command": (["service", "start", "x"], "command to run"),
    "service bad action": (["service", "explode", "x", "--", "true"], "explode"),
    "fleet no playbook": (["fleet"], "PLAYBOOK"),
    "demo fps 0": (["demo", "--fps", "0"], "--fps"),
    "demo fps nan": (["demo", "--fps", "nan"], "--fps"),
    "demo count 0": (["demo", "--count", "0"], "--count"),
    "demo zmq-port 0": (["demo", "--zmq-port", "0"], "port must be"),
    "senders zmq-port 0": (["senders", "--zmq", "--zmq-port", "0"], "port must be"),
    "senders conns 0": (["senders", "--conns", "0"], "--conns"),
    "senders max-files -1": (["senders", "--max-files", "-1"], "--max-files"),
    "receivers workers 0": (["receivers", "--workers", "0"], "--workers"),
    "receivers dest_path cannot be made": (
        ["receivers", "--config", "{dest_config}", "--listen-ip", "127.0.0.1"],
        "dest_path /proc/nope/x cannot be used",
    ),
    "receivers dest_path is a file": (
        ["receivers", "--config", "{file_config}", "--listen-ip", "127.0.0.1"],
        "cannot be used: Not a directory",
    ),
    "unknown command": (["explode"], "explode"),
}


def run_camxfer(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`camxfer ARGS` in a bare environment, its output captured; a hang raises TimeoutExpired."""
    return subprocess.run(
        [sys.executable, "-m", "camxfer", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.parametrize(("argv", "needle"), CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_error_line_and_exit_2(
    tmp_path: Path, argv: list[str], needle: str
) -> None:
    from tests.conftest import free_port

    src = tmp_path / "src"
    src.mkdir()
    afile = tmp_path / "a-file"
    afile.write_text("x")
    port = str(free_port())
    configs = tmp_path / "src" / "configs"
    configs.mkdir()
    dest_config, file_config = configs / "dest.json", configs / "file.json"
    dest_config.write_text(json.dumps({"cam01": {"dest_path": "/proc/nope/x", "port": 1}}))
    file_config.write_text(json.dumps({"cam01": {"dest_path": str(afile), "port": 1}}))
    args = [
        a.format(src=src, file=afile, port=port, dest_config=dest_config, file_config=file_config)
        for a in argv
    ]
    try:
        done = run_camxfer(args, tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"camxfer {' '.join(args)} accepted the bad input and kept running")
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("camxfer"), errors[0]
    assert needle in errors[0], errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "src"]
    assert [p.name for p in src.iterdir()] == ["configs"]


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder in which nothing can be created, root included (chattr +i)."""
    folder = tmp_path / "unwritable"
    folder.mkdir()
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("command", ["recv", "receivers"])
def test_a_landing_folder_nothing_can_be_written_in_is_refused_at_start(
    tmp_path: Path, unwritable: Path, command: str
) -> None:
    # Started anyway, the receiver would refuse every file, and senders retry each in vain.
    from tests.conftest import free_port

    if command == "recv":
        args = ["recv", "--listen-ip", "127.0.0.1", "--port", str(free_port())]
        args += ["--out-dir", str(unwritable)]
        needle = f"--out-dir {unwritable}: cannot write there"
    else:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"cam01": {"dest_path": str(unwritable), "port": 1}}))
        args = ["receivers", "--config", str(config), "--listen-ip", "127.0.0.1"]
        needle = f"dest_path {unwritable} cannot be used: Operation not permitted"
    done = run_camxfer(args, tmp_path)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and needle in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert list(unwritable.iterdir()) == []
