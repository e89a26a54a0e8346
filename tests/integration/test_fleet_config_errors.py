"""A broken camera_config.json stops `camxfer senders` / `camxfer receivers` with one line.

Each case runs the real command on a real file: exit status 2, exactly one line on stderr that
names the problem, no traceback, nothing listening on the config's ports afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fleet_helpers import free_ports, port_accepts, run

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of stalling CI

P1, P2, ZMQ = free_ports(3)
GOOD = {"src": "src/cam01", "dest_path": "storage", "port": P1}

CASES: dict[str, tuple[Any, str]] = {
    # name: (config content, or None for no file; what the error line must say)
    "port too big": ({"cam01": {**GOOD, "port": 70000}}, "field 'port': must be an integer"),
    "port zero": ({"cam01": {**GOOD, "port": 0}}, "field 'port': must be an integer"),
    "port string": ({"cam01": {**GOOD, "port": "50001"}}, "field 'port': must be an integer"),
    "port true": ({"cam01": {**GOOD, "port": True}}, "field 'port': must be an integer"),
    "duplicate port": (
        {"cam01": GOOD, "cam02": {**GOOD, "src": "src/cam02", "port": P1}},
        f"{P1} on host '127.0.0.1' is already used by camera 'cam01'",
    ),
    "missing file": (None, "does not exist"),
    "invalid json": ("{'cam01': {}}", "invalid JSON at line 1"),
    "not an object": ([GOOD], "top level must be a JSON object"),
    "no cameras": ({}, "defines no cameras"),
    "unknown field": ({"cam01": {**GOOD, "prot": 1}}, "field 'prot': unknown"),
    "bad camera name": ({"../cam": GOOD}, "camera name '../cam' is not allowed"),
}
SENDERS_ONLY = {
    "missing src": ({"cam01": {"dest_path": "storage", "port": P1}}, "field 'src': missing"),
}
RECEIVERS_ONLY = {
    "missing dest_path": (
        {"cam01": {"src": "src/cam01", "port": P1}},
        "field 'dest_path': missing",
    ),
}

COMMANDS = {
    "receivers": ["receivers", "--workers", "1"],
    "senders --zmq": ["senders", "--zmq", "--zmq-bind", "127.0.0.1", "--zmq-port", str(ZMQ)],
    "senders --once": ["senders", "--once"],
}


def params() -> list[Any]:
    out = []
    for command, argv in COMMANDS.items():
        only = RECEIVERS_ONLY if command == "receivers" else SENDERS_ONLY
        for case, (content, message) in {**CASES, **only}.items():
            out.append(pytest.param(argv, content, message, id=f"{command}-{case}"))
    return out


def write_config(folder: Path, content: Any) -> Path:
    path = folder / "camera_config.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(("argv", "content", "message"), params())
def test_config_error_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], content: Any, message: str
) -> None:
    config = write_config(tmp_path, content)
    result = run([*argv, "--config", str(config)], cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"camxfer {argv[0]}: error: ")
    assert message in lines[0]
    assert str(config) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not port_accepts(P1) and not port_accepts(ZMQ)
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        [] if content is None else ["camera_config.json"]
    )


@pytest.mark.parametrize("command", ["receivers", "senders"])
def test_unknown_camera_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, {"cam01": GOOD})
    extra = ["--once"] if command == "senders" else []
    result = run(
        [command, "--config", str(config), "--camera", "cam09", *extra], cwd=tmp_path, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"camxfer {command}: error: {config} has no camera 'cam09'; its cameras are: cam01."
    ]


def test_trigger_mode_refuses_events_of_zero_frames(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"cam01": GOOD})
    result = run(
        [*COMMANDS["senders --zmq"], "--config", str(config), "--max-files", "0"],
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "camxfer senders: error: --max-files must be at least 1 with --zmq "
        "(frames per camera per event)"
    ]
    assert not port_accepts(ZMQ)
