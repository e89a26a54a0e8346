"""The trigger server answers every bad request with an error and keeps serving.

Bad requests go over raw ZMQ sockets (REQ, and a DEALER for the envelope case) to a real
`camxfer senders --zmq` process; after each one a valid request on a fresh socket must be
answered within a second, and no event may have started for anything refused. The
`camxfer trigger` command's exit codes are checked against the same server.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from fleet_helpers import (
    CAMXFER,
    ENV,
    Layout,
    files_under,
    free_ports,
    make_layout,
    receivers,
    run,
    trigger_server,
    write_frames,
)

from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of stalling CI

CAMERAS = ["cam01", "cam02"]
GOOD_EVENT = "ball_ok-0"
FRAME = frame_name("cam01", 0)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    layout = make_layout(tmp_path_factory.mktemp("requests"), CAMERAS)
    for camera in CAMERAS:
        write_frames(layout.src(camera), camera, range(15))
    with receivers(layout), trigger_server(layout):
        client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=5)
        assert client.trigger(FRAME, "ball_ok")["event"] == GOOD_EVENT
        assert client.wait(GOOD_EVENT, timeout=30)["state"] == "done"
        yield layout


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def req_socket(ctx: zmq.Context, layout: Layout) -> zmq.Socket:
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{layout.zmq_port}")
    return sock


def reply_within(sock: zmq.Socket, seconds: float) -> dict[str, Any] | None:
    if not sock.poll(int(seconds * 1000), zmq.POLLIN):
        return None
    return json.loads(sock.recv())


def assert_still_serving(ctx: zmq.Context, layout: Layout) -> None:
    """A fresh socket's valid status request and a repeated valid trigger, answered within 1 s."""
    sock = req_socket(ctx, layout)
    try:
        sock.send_json({"status": GOOD_EVENT})
        status = reply_within(sock, 1.0)
        assert status is not None, "no reply to a valid status request within 1 s"
        assert (status["ok"], status["event"], status["state"]) == (True, GOOD_EVENT, "done")
        sock.send_json({"frame_id": FRAME, "ball_id": "ball_ok"})
        assert reply_within(sock, 1.0) == {"ok": True, "event": GOOD_EVENT}
    finally:
        sock.close()


def assert_no_new_event(ctx: zmq.Context, layout: Layout) -> None:
    sock = req_socket(ctx, layout)
    try:
        sock.send_json({"list": True})
        assert reply_within(sock, 1.0) == {"ok": True, "events": {GOOD_EVENT: "done"}}
    finally:
        sock.close()
    for camera in CAMERAS:
        assert sorted(p.name for p in layout.dest(camera).iterdir()) == ["ball_ok"]
    assert sorted(p.name for p in (layout.root / "storage").iterdir()) == ["disk1", "disk2"]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


BAD_REQUESTS = {
    "not json": b"trigger please",
    "empty": b"",
    "not utf-8": b"\xff\xfe{}",
    "json array": b'["frame_cam01_000000000.jpg", "ball_x"]',
    "json string": b'"frame_cam01_000000000.jpg"',
    "json number": b"42",
    "json null": b"null",
    "empty object": b"{}",
    "missing frame_id": json_bytes({"ball_id": "ball_x"}),
    "missing ball_id": json_bytes({"frame_id": FRAME}),
    "frame_id true": json_bytes({"frame_id": True, "ball_id": "ball_x"}),
    "frame_id number": json_bytes({"frame_id": 46836, "ball_id": "ball_x"}),
    "frame_id list": json_bytes({"frame_id": [FRAME], "ball_id": "ball_x"}),
    "ball_id number": json_bytes({"frame_id": FRAME, "ball_id": 7}),
    "ball_id null": json_bytes({"frame_id": FRAME, "ball_id": None}),
    "ball_id false": json_bytes({"frame_id": FRAME, "ball_id": False}),
    "ball_id parent": json_bytes({"frame_id": FRAME, "ball_id": "../x"}),
    "ball_id dotdot": json_bytes({"frame_id": FRAME, "ball_id": ".."}),
    "ball_id absolute": json_bytes({"frame_id": FRAME, "ball_id": "/etc"}),
    "ball_id hidden": json_bytes({"frame_id": FRAME, "ball_id": ".hidden"}),
    "ball_id 100 chars": json_bytes({"frame_id": FRAME, "ball_id": "b" * 100}),
    "ball_id empty": json_bytes({"frame_id": FRAME, "ball_id": ""}),
    "ball_id slash": json_bytes({"frame_id": FRAME, "ball_id": "a/b"}),
    "ball_id backslash": json_bytes({"frame_id": FRAME, "ball_id": "a\\b"}),
    "ball_id nul": json_bytes({"frame_id": FRAME, "ball_id": "a\x00b"}),
    "ball_id newline": json_bytes({"frame_id": FRAME, "ball_id": "ball\n"}),
    "ball_id space": json_bytes({"frame_id": FRAME, "ball_id": "ball 1"}),
    "ball_id unicode": json_bytes({"frame_id": FRAME, "ball_id": "b\u0430ll"}),
    "frame_id empty": json_bytes({"frame_id": "", "ball_id": "ball_x"}),
    "frame_id no number": json_bytes({"frame_id": "frame_cam01.jpg", "ball_id": "ball_x"}),
    "frame_id letters": json_bytes({"frame_id": "frame_cam01_00004683x.jpg", "ball_id": "ball_x"}),
    "frame_id png": json_bytes({"frame_id": "frame_cam01_000046836.png", "ball_id": "ball_x"}),
    "frame_id path": json_bytes({"frame_id": "../" + FRAME, "ball_id": "ball_x"}),
    "frame_id negative": json_bytes({"frame_id": "frame_cam01_-00000001.jpg", "ball_id": "ball_x"}),
    "frame_id newline": json_bytes({"frame_id": FRAME + "\n", "ball_id": "ball_x"}),
    "frame_id unicode digits": json_bytes(
        {"frame_id": "frame_cam01_\u0661\u0662\u0663.jpg", "ball_id": "ball_x"}
    ),
    "frame_id too many digits": json_bytes(
        {"frame_id": "frame_cam01_" + "9" * 40 + ".jpg", "ball_id": "ball_x"}
    ),
    "frame_id 10 KiB": json_bytes({"frame_id": "f" * 10_000, "ball_id": "ball_x"}),
    "unknown field": json_bytes({"frame_id": FRAME, "ball_id": "ball_x", "priority": 1}),
    "status not a string": json_bytes({"status": 5}),
    "status unknown event": json_bytes({"status": "nope"}),
    "list not true": json_bytes({"list": "yes"}),
}


@pytest.mark.parametrize("payload", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_request_gets_an_error_reply_and_the_server_keeps_answering(
    fleet: Layout, context: zmq.Context, payload: bytes
) -> None:
    sock = req_socket(context, fleet)
    sock.send(payload)
    reply = reply_within(sock, 2.0)
    sock.close()
    assert reply is not None, "no reply to a bad request"
    assert reply["ok"] is False
    assert isinstance(reply["error"], str) and reply["error"]
    assert len(reply["error"]) < 400  # long input is not echoed back whole
    assert_still_serving(context, fleet)
    assert_no_new_event(context, fleet)


def test_multipart_request_gets_an_error_reply(fleet: Layout, context: zmq.Context) -> None:
    sock = req_socket(context, fleet)
    sock.send_multipart([json_bytes({"frame_id": FRAME, "ball_id": "ball_x"}), b"second", b"third"])
    reply = reply_within(sock, 2.0)
    sock.close()
    assert reply is not None and reply["ok"] is False
    assert "3 parts" in reply["error"]
    assert_still_serving(context, fleet)
    assert_no_new_event(context, fleet)


def test_oversized_request_drops_the_peer_and_the_server_keeps_answering(
    fleet: Layout, context: zmq.Context
) -> None:
    big = json_bytes({"frame_id": FRAME, "ball_id": "ball_big", "pad": "x" * (1 << 20)})
    sock = req_socket(context, fleet)
    sock.send(big)
    assert reply_within(sock, 1.5) is None  # libzmq dropped the peer: the client times out
    sock.close()
    assert_still_serving(context, fleet)
    assert_no_new_event(context, fleet)


def test_clients_that_send_and_vanish_do_not_wedge_the_server(
    fleet: Layout, context: zmq.Context
) -> None:
    for payload in (json_bytes({"status": GOOD_EVENT}), b"garbage", json_bytes({"list": True})):
        for _ in range(5):
            sock = req_socket(context, fleet)
            sock.send(payload)
            sock.close()  # LINGER 0: gone before (or while) the reply is sent
    # One that surely arrived: the server replies to a peer that is no longer there.
    sock = req_socket(context, fleet)
    sock.send(json_bytes({"status": GOOD_EVENT}))
    sock.poll(200, zmq.POLLIN)
    sock.close()
    assert_still_serving(context, fleet)
    assert_no_new_event(context, fleet)


def test_request_without_an_envelope_is_dropped_and_the_server_keeps_answering(
    fleet: Layout, context: zmq.Context
) -> None:
    """A raw DEALER without the empty delimiter: libzmq's REP drops it; no reply, no wedge."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{fleet.zmq_port}")
    sock.send(json_bytes({"frame_id": FRAME, "ball_id": "ball_dealer"}))
    assert not sock.poll(1000, zmq.POLLIN)
    sock.close()
    assert_still_serving(context, fleet)
    assert_no_new_event(context, fleet)


# Under the 64 KiB a request may have, but nested deeper than the JSON parser follows.
TOO_DEEP = {
    "array": b"[" * 30_000 + b"]" * 30_000,
    "object": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
}


@pytest.mark.parametrize("payload", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_deeply_nested_json_is_refused_as_invalid_json(
    fleet: Layout, context: zmq.Context, payload: bytes
) -> None:
    """The client's malformed request, refused as such: not answered as the server's own bug
    ("internal error: maximum recursion depth exceeded ...") with a traceback in its log."""
    sock = req_socket(context, fleet)
    sock.send(payload)
    reply = reply_within(sock, 2.0)
    sock.close()
    assert reply == {"ok": False, "error": "not valid JSON: nested too deeply"}
    assert "Traceback" not in (fleet.root / "senders.log").read_text()
    assert_still_serving(context, fleet)
    assert_no_new_event(context, fleet)


def test_python_client_status_of_unknown_event_is_not_ok(fleet: Layout) -> None:
    reply = TriggerClient("127.0.0.1", fleet.zmq_port, timeout=2).status("nope")
    assert reply["ok"] is False
    assert "nope" in reply["error"]


# --- `camxfer trigger` exit codes --------------------------------------------------------------
def trigger_cli(layout: Layout, *args: str, port: int | None = None) -> Any:
    return run(
        ["trigger", "--port", str(port or layout.zmq_port), *args], cwd=layout.root, timeout=60
    )


def test_trigger_command_exits_2_when_no_server_listens(fleet: Layout) -> None:
    (port,) = free_ports(1)
    result = trigger_cli(
        fleet, "--frame-id", FRAME, "--ball-id", "ball_x", "--reply-timeout", "0.3", port=port
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no reply" in lines[0] and str(port) in lines[0]


def test_trigger_command_exits_1_when_the_request_is_refused(fleet: Layout) -> None:
    result = trigger_cli(fleet, "--frame-id", FRAME, "--ball-id", "../x")
    assert result.returncode == 1
    assert "refused" in result.stderr and "ball_id" in result.stderr
    result = trigger_cli(fleet, "--frame-id", "frame.jpg", "--ball-id", "ball_x", "--wait")
    assert result.returncode == 1
    assert "refused" in result.stderr and "frame id" in result.stderr
    assert_no_new_event_cli(fleet)


def test_trigger_command_status_of_unknown_event_exits_1(fleet: Layout) -> None:
    result = trigger_cli(fleet, "--status", "nope")
    assert result.returncode == 1
    assert "no event 'nope'" in result.stderr


def test_trigger_command_exits_0_on_success(fleet: Layout) -> None:
    accepted = trigger_cli(fleet, "--frame-id", FRAME, "--ball-id", "ball_ok", "--json")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout) == {"ok": True, "event": GOOD_EVENT}
    waited = trigger_cli(fleet, "--frame-id", FRAME, "--ball-id", "ball_ok", "--wait")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.splitlines()[0] == f"event {GOOD_EVENT}: done"
    assert "cam01: 10/10 landed, 0 missing, 0 failed" in waited.stdout
    status = trigger_cli(fleet, "--status", GOOD_EVENT, "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["totals"]["landed"] == 20
    for camera in CAMERAS:
        assert len(files_under(layout_ball(fleet, camera))) == 10


def layout_ball(layout: Layout, camera: str) -> Any:
    return layout.dest(camera) / "ball_ok" / camera


def assert_no_new_event_cli(layout: Layout) -> None:
    client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=2)
    assert client.request({"list": True}) == {"ok": True, "events": {GOOD_EVENT: "done"}}


@pytest.mark.parametrize("command", ["trigger", "events"])
def test_output_to_a_reader_that_has_gone_ends_quietly(fleet: Layout, command: str) -> None:
    """`camxfer trigger --wait ... | head -1` and `camxfer events | head -3` close the pipe
    before camxfer has written all it has: no traceback ("BrokenPipeError") on stderr."""
    args = {
        "trigger": ["trigger", "--port", str(fleet.zmq_port), "--status", GOOD_EVENT],
        "events": ["events", "--config", str(fleet.config)],
    }[command]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line
    try:
        result = subprocess.run(
            [*CAMXFER, *args],
            cwd=fleet.root,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1
