"""One structured log line per notable event, as a log shipper reads them (--log-json).

A real receiver (two workers, --verbose, --log-json, --log-file) and real senders: each line
must be one JSON object; connections opened and closed, files landed (with --verbose), a file
refused with its reason and a worker restart each have their line with their own fields, on
stderr and in the log file alike.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from fleet_helpers import Proc, children, free_ports, make_layout, run, start, wait_for

from tests.conftest import make_frames

pytestmark = pytest.mark.timeout(90)


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line must be JSON


def events(entries: list[dict], name: str) -> list[dict]:
    return [e for e in entries if e.get("event") == name]


def test_receiver_and_sender_log_each_event_as_one_json_line(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    log_file = tmp_path / "logs" / "recv.log"
    receiver: Proc = start(
        "camxfer recv",
        [
            "--log-json",
            "--log-file",
            str(log_file),
            "recv",
            "--listen-ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--out-dir",
            str(tmp_path / "out"),
            "--workers",
            "2",
            "--use-dest-paths",
            "--verbose",
        ],
        tmp_path / "recv.stderr",
        tmp_path,
    )
    try:
        receiver.wait_log("listening on")
        make_frames(tmp_path / "src", 5, camera="cam09")
        sent = run(
            [
                "--log-json",
                "send",
                "--src-dir",
                str(tmp_path / "src"),
                "--port",
                str(port),
                "--once",
                "--dest-path",
                "ball/cam09",
                "--conns",
                "2",
            ],
            cwd=tmp_path,
        )
        assert sent.returncode == 0, sent.stderr
        # The same name again with other bytes: the receiver refuses it and says why.
        make_frames(tmp_path / "other", 1, camera="cam09")
        refused = run(
            [
                "--log-json",
                "send",
                "--src-dir",
                str(tmp_path / "other"),
                "--port",
                str(port),
                "--once",
                "--dest-path",
                "ball/cam09",
                "--retries",
                "0",
            ],
            cwd=tmp_path,
        )
        assert refused.returncode == 1
        sender_failed = events(json_lines(refused.stderr), "file_failed")
        assert [e["file"] for e in sender_failed] == ["frame_cam09_000000001.jpg"]
        assert "different content" in sender_failed[0]["reason"]

        worker = children(receiver.pid)[0]
        os.kill(worker, signal.SIGKILL)
        receiver.wait_log('"worker_restarted"')
        wait_for(
            lambda: len(events(json_lines(receiver.text()), "connection_closed")) >= 3,
            20,
            "every connection to be logged closed",
        )
    finally:
        receiver.stop()

    for text in (receiver.text(), log_file.read_text()):
        entries = json_lines(text)
        assert {e["command"] for e in entries} == {"recv"}
        assert len(events(entries, "connection_opened")) == 3  # 2 + 1 connections
        closed = events(entries, "connection_closed")
        assert len(closed) == 3 and all(e["peer"].startswith("127.0.0.1:") for e in closed)
        landed = events(entries, "file_landed")
        assert sorted(Path(e["file"]).name for e in landed) == [
            f"frame_cam09_{n:09d}.jpg" for n in range(1, 6)
        ]
        assert all(e["bytes"] == 4096 for e in landed)
        failed = events(entries, "file_failed")
        assert [e["file"] for e in failed] == ["frame_cam09_000000001.jpg"]
        assert "different content" in failed[0]["reason"]
        restarts = events(entries, "worker_restarted")
        assert [e["restarts"] for e in restarts] == [1]
        assert restarts[0]["level"] == "warning"


def test_without_verbose_no_line_per_file(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    receiver = start(
        "camxfer recv",
        [
            "--log-json",
            "recv",
            "--listen-ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--out-dir",
            str(tmp_path / "out"),
        ],
        tmp_path / "recv.stderr",
        tmp_path,
    )
    try:
        receiver.wait_log("listening on")
        make_frames(tmp_path / "src", 4)
        sent = run(
            ["send", "--src-dir", str(tmp_path / "src"), "--port", str(port), "--once"],
            cwd=tmp_path,
        )
        assert sent.returncode == 0, sent.stderr
        receiver.wait_log('"connection_closed"')
    finally:
        receiver.stop()
    entries = json_lines(receiver.text())
    assert events(entries, "connection_opened")
    assert not events(entries, "file_landed")
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 4


def test_receivers_pass_the_log_format_to_each_camera_s_receiver(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "fleet", ["cam01", "cam02"])
    log_file = tmp_path / "logs" / "receivers.log"
    proc = start(
        "camxfer receivers",
        [
            "--log-json",
            "--log-file",
            str(log_file),
            "receivers",
            "--config",
            str(layout.config),
            "--workers",
            "1",
        ],
        tmp_path / "receivers.stderr",
        layout.root,
    )
    try:
        for camera in layout.cameras:
            proc.wait_log(f"listening on 127.0.0.1:{layout.ports[camera]}")
        proc.remember_descendants()
    finally:
        proc.stop()
    entries = json_lines(proc.text())  # the receivers' lines and their children's, all JSON
    assert {e["command"] for e in entries} == {"receivers", "recv"}
    assert {e["command"] for e in json_lines(log_file.read_text())} == {"receivers"}
    for camera in layout.cameras:
        own = json_lines((tmp_path / "logs" / f"receivers.{camera}.log").read_text())
        assert {e["command"] for e in own} == {"recv"}
        assert any(f":{layout.ports[camera]}" in e["message"] for e in own)


def test_a_sender_ending_without_teardown_still_writes_its_last_lines(tmp_path: Path) -> None:
    """`camxfer send` skips the interpreter's teardown at its end (os._exit): its JSON stats,
    its last log lines and its log file must all be out before that."""
    port = free_ports(1)[0]
    receiver: Proc = start(
        "camxfer recv",
        ["recv", "--listen-ip", "127.0.0.1", "--port", str(port), "--out-dir", "out"],
        tmp_path / "recv.stderr",
        tmp_path,
    )
    try:
        receiver.wait_log("listening on")
        make_frames(tmp_path / "src", 40, camera="cam04")
        log_file = tmp_path / "logs" / "send.log"
        logging = ["--log-json", "--log-file", str(log_file)]
        sent = run(
            [*logging, "send", "--src-dir", "src", "--port", str(port), "--once", "--json-stats"],
            cwd=tmp_path,
        )
    finally:
        receiver.stop()
    assert sent.returncode == 0, sent.stderr
    stats = json.loads(sent.stdout.strip().splitlines()[-1])
    assert stats["ok"] and stats["files"] == 40 and stats["manifest"]["landed"]
    for text in (sent.stderr, log_file.read_text()):
        last = json_lines(text)[-1]
        assert last["message"].startswith("manifest landed: 40 files"), last
