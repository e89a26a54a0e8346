"""Receivers and the trigger server listen on the configured address only.

Loopback is a whole /8 on Linux, so a service bound to 127.0.0.2 must accept there and refuse
connections to 127.0.0.1 on the same port; one bound to every interface would accept both.
"""

from __future__ import annotations

import errno
import json
import socket

import pytest
from fleet_helpers import files_under, make_layout, sha256, start, write_frames

from camxfer.errors import TransferError
from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name

pytestmark = pytest.mark.timeout(90)

BOUND = "127.0.0.2"


def connect_errno(host: str, port: int) -> int:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex((host, port))


def test_receivers_and_the_trigger_server_bind_the_configured_address_only(tmp_path) -> None:
    layout = make_layout(tmp_path, ["cam01"])
    layout.raw["cam01"]["host"] = BOUND  # receivers bind it; senders send to it
    layout.config.write_text(json.dumps(layout.raw))
    write_frames(layout.src("cam01"), "cam01", range(5))
    port = layout.ports["cam01"]

    recv = start(
        "camxfer receivers",
        ["receivers", "--config", str(layout.config), "--workers", "2"],
        layout.root / "receivers.log",
        layout.root,
    )
    try:
        recv.wait_log(f"listening on {BOUND}:{port}")
        recv.remember_descendants()
        assert connect_errno(BOUND, port) == 0
        assert connect_errno("127.0.0.1", port) == errno.ECONNREFUSED

        server = start(
            "camxfer senders --zmq",
            [
                "senders",
                "--config",
                str(layout.config),
                "--zmq",
                "--zmq-bind",
                BOUND,
                "--zmq-port",
                str(layout.zmq_port),
                "--max-files",
                "5",
            ],
            layout.root / "senders.log",
            layout.root,
        )
        try:
            server.wait_log("trigger server on")
            assert connect_errno("127.0.0.1", layout.zmq_port) == errno.ECONNREFUSED
            wrong = TriggerClient("127.0.0.1", layout.zmq_port, timeout=1.0, retries=1)
            with pytest.raises(TransferError, match="no reply"):
                wrong.trigger(frame_name("cam01", 0), "ball_1")

            client = TriggerClient(BOUND, layout.zmq_port, timeout=10)
            event = client.trigger(frame_name("cam01", 0), "ball_1")["event"]
            assert client.wait(event, timeout=60)["state"] == "done"
        finally:
            server.stop()
    finally:
        recv.stop()

    assert files_under(layout.landed("cam01", "ball_1")) == {
        frame_name("cam01", n): sha256(layout.src("cam01") / frame_name("cam01", n))
        for n in range(5)
    }
