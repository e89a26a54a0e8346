"""The trigger client against a real ZMQ server: requests that get their reply share one
connection (following an event polls every few ms), and a request that got none is retried
on a fresh socket (Lazy Pirate), so one lost reply never wedges the client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from camxfer.fleet.trigger_client import TriggerClient
from tests.conftest import free_port


class Server:
    """A server that counts accepted TCP connections and leaves the requests numbered in `drop`
    unanswered."""

    def __init__(self, drop: set[int]) -> None:
        self.port = free_port()
        self.drop = drop
        self.accepted = 0
        self.answered = 0
        self._stop = threading.Event()
        self._context = zmq.Context()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        ready = threading.Event()
        self._ready = ready
        self._thread.start()
        assert ready.wait(5)

    def _serve(self) -> None:
        sock = self._context.socket(zmq.ROUTER)  # may leave a request unanswered, unlike REP
        monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED)
        sock.bind(f"tcp://127.0.0.1:{self.port}")
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        seen = 0
        while not self._stop.is_set():
            events = dict(poller.poll(50))
            accepted = monitor in events and recv_monitor_message(monitor)["event"]
            if accepted == zmq.EVENT_ACCEPTED:
                self.accepted += 1
            if sock in events:
                peer, empty, payload = sock.recv_multipart()
                seen += 1
                if seen in self.drop:
                    continue
                self.answered += 1
                reply = json.dumps({"ok": True, "echo": json.loads(payload)}).encode()
                sock.send_multipart([peer, empty, reply])
        sock.disable_monitor()
        monitor.close()
        sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._context.term()


@pytest.fixture
def serve() -> Iterator:
    servers: list[Server] = []

    def start(drop: set[int] | None = None) -> Server:
        servers.append(Server(drop or set()))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_answered_requests_share_one_connection(serve) -> None:
    server = serve()
    with TriggerClient("127.0.0.1", server.port, timeout=5) as client:
        replies = [client.status(f"event-{i}") for i in range(20)]
    assert [r["echo"]["status"] for r in replies] == [f"event-{i}" for i in range(20)]
    assert server.answered == 20
    assert server.accepted == 1


def test_a_request_without_reply_is_retried_on_a_fresh_connection(serve) -> None:
    server = serve(drop={2})
    with TriggerClient("127.0.0.1", server.port, timeout=0.5, retries=3) as client:
        first = client.status("a")
        second = client.status("b")  # its first try gets no reply
        third = client.status("c")
    assert [first["echo"], second["echo"], third["echo"]] == [
        {"status": "a"},
        {"status": "b"},
        {"status": "c"},
    ]
    assert server.answered == 3
    assert server.accepted == 2  # the retry's socket, then kept for the third request
