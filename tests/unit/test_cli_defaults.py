"""A command line without options runs as the library's defaults do: `camxfer send` gives the
SendOptions a caller of `run_send` gets, `camxfer recv` the receiver's settings, and a
trigger's camera runs start from the same detection and transfer settings as `camxfer send`.
A default changed in one place cannot drift from the other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from camxfer.cli import build_parser
from camxfer.cli.recv import settings_from_args
from camxfer.cli.send import options_from_args
from camxfer.fleet.events import EventSettings
from camxfer.recv.server import MAX_DEFAULT_WORKERS, ListenSettings, default_workers
from camxfer.recv.session import ReceiverSettings
from camxfer.send.options import SendOptions
from tests.conftest import REPO


def test_send_without_options_gets_send_options_defaults(tmp_path: Path) -> None:
    args = build_parser("send").parse_args(["send", "--src-dir", str(tmp_path), "--port", "9"])
    assert options_from_args(args) == SendOptions(src_dir=tmp_path, port=9)


def test_send_options_given_reach_send_options(tmp_path: Path) -> None:
    argv = ["send", "--src-dir", str(tmp_path), "--port", "9", "--conns", "3", "--window", "5"]
    opts = options_from_args(build_parser("send").parse_args(argv))
    assert (opts.conns, opts.window) == (3, 5)


def test_trigger_camera_runs_detect_and_send_as_send_does() -> None:
    settings, send = EventSettings(), SendOptions(src_dir=Path("."))
    assert (settings.conns, settings.lookahead, settings.stable_ms, settings.frame_timeout) == (
        send.conns,
        send.lookahead,
        send.stable_ms,
        send.frame_timeout,
    )


def test_senders_frame_timeout_default_is_the_events() -> None:
    args = build_parser("senders").parse_args(["senders", "--zmq"])
    assert args.frame_timeout == EventSettings().frame_timeout


def test_recv_without_options_gets_the_settings_defaults(tmp_path: Path) -> None:
    argv = ["recv", "--port", "9", "--out-dir", str(tmp_path)]
    settings, listen = settings_from_args(build_parser("recv").parse_args(argv))
    assert settings == ReceiverSettings(out_dir=tmp_path.absolute())
    assert listen == ListenSettings(port=9, workers=default_workers())


def test_recv_starts_a_worker_per_cpu_it_may_use() -> None:
    one_cpu = subprocess.run(
        [sys.executable, "-c", "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
         "from camxfer.recv.server import default_workers; print(default_workers())"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert one_cpu.stdout.strip() == "1"
    assert default_workers() == min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0)))
