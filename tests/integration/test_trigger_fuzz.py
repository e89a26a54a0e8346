"""Fuzzing the ZMQ trigger server: whatever arrives, REQ/REP lockstep is kept.

Hypothesis throws random bytes, random JSON values and objects with the trigger's keys
holding random types, and random multi-part messages at a real TriggerServer on loopback
(its event book has no cameras, so an accepted trigger moves no frames). Every request gets
one JSON reply with a boolean "ok" and, when refused, a short error string; an unsafe ball
id is never accepted; and a valid request right after is answered promptly. The per-case
bad requests of test_trigger_requests run against the full `camxfer senders --zmq`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camxfer.fleet.events import EventBook, EventSettings
from camxfer.fleet.trigger_server import SAFE_BALL_ID, TriggerServer
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(120)

CASES = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    context = zmq.Context()
    trigger = TriggerServer(
        EventBook([], EventSettings()), f"tcp://127.0.0.1:{port}", context=context
    )
    thread = threading.Thread(target=trigger.serve, daemon=True)
    thread.start()
    yield port
    trigger.stop.set()
    thread.join(5)
    context.destroy(linger=0)
    print(f"\ntrigger fuzz: {next(CASES)} requests, every one answered")


@pytest.fixture(scope="module")
def client(server: int) -> Iterator[zmq.Socket]:
    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{server}")
    yield sock
    context.destroy(linger=0)


def ask(sock: zmq.Socket, parts: list[bytes]) -> dict[str, Any]:
    next(CASES)
    sock.send_multipart(parts)
    assert sock.poll(5000, zmq.POLLIN), f"no reply to {parts!r:.200}"
    reply = json.loads(sock.recv())
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and 0 < len(reply["error"]) < 400, reply
    return reply


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
names = st.text(max_size=70) | st.sampled_from(
    ["../x", "/etc", "..", ".", "", "a/b", "a\\b", "a\x00b", "ball 1", "b\u0430ll", "ball_ok"]
)
frame_ids = (
    json_values
    | st.text(max_size=60)
    | st.from_regex(r"frame_[a-z0-9]{1,8}_[0-9\u0660-\u0669]{1,12}\.(jpg|png)", fullmatch=True)
)
trigger_like = st.fixed_dictionaries(
    {"frame_id": frame_ids, "ball_id": names | json_values},
    optional={"status": json_values, "list": json_values, "extra": json_values},
)
requests = st.one_of(
    st.binary(max_size=300).map(lambda b: [b]),
    json_values.map(lambda v: [json.dumps(v).encode()]),
    trigger_like.map(lambda v: [json.dumps(v).encode()]),
    st.lists(st.binary(max_size=50), min_size=2, max_size=4),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(parts=requests)
def test_every_request_gets_one_reply_and_nothing_unsafe_is_accepted(
    client: zmq.Socket, parts: list[bytes]
) -> None:
    reply = ask(client, parts)
    if reply["ok"] and set(reply) == {"ok", "event"}:  # a trigger was accepted
        message = json.loads(parts[0])
        assert SAFE_BALL_ID.fullmatch(message["ball_id"]), message
        assert reply["event"].startswith(message["ball_id"] + "-")
    # Lockstep kept: the next request on the same socket is answered too.
    assert ask(client, [b'{"list": true}'])["ok"] is True
