"""Errors an operator meets first say what is wrong and what to do, in one line, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fleet_helpers import free_ports, run

pytestmark = pytest.mark.timeout(60)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def test_receiver_on_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(
            ["recv", "--listen-ip", "127.0.0.1", "--port", str(port), "--out-dir", "out"],
            cwd=tmp_path,
        )
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line
    assert "choose another --port" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_trigger_with_no_server_listening(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    done = run(
        ["trigger", "--port", str(port), "--status", "ball_001-1", "--reply-timeout", "0.2"],
        cwd=tmp_path,
    )
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "no reply from the trigger server" in line
    assert "is `camxfer senders --zmq` running there" in line


def test_a_bad_option_value_names_the_choices(tmp_path: Path) -> None:
    done = run(["send", "--src-dir", ".", "--port", "1", "--progress", "fancy"], cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --progress: invalid choice: 'fancy'" in done.stderr
    assert "'auto'" in done.stderr and "'lines'" in done.stderr
