"""The client side of the trigger server: send one request, get one reply, never hang.

Lazy Pirate (zguide ch. 4): a REQ socket that got no reply in time is stuck in its state
machine, so it is closed and a fresh one is made for the next attempt. A socket that got its
reply is kept for the next request: following an event polls its status every few ms, and a
new socket each time would be a new TCP connection and handshake for the server each time.
"""

from __future__ import annotations

import json
import time
from typing import Any

import zmq

from camxfer.errors import TransferError
from camxfer.fleet.curve import CurveClient, CurveClientKeys


class EventStillRunning(TransferError):
    """The event had not ended when the client stopped waiting for it."""


class TriggerClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        curve: CurveClientKeys | None = None,
    ) -> None:
        self.endpoint = f"tcp://{host}:{port}"
        self.timeout = timeout
        self.retries = retries
        self._context: zmq.Context = zmq.Context.instance()
        # A CURVE server drops a client whose key it does not know without a word: such a
        # client, like one with the wrong server key, only ever times out.
        self._curve = CurveClient.load(curve) if curve is not None else None
        self._sock: zmq.Socket | None = None  # the last socket that got its reply

    def __enter__(self) -> TriggerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            if self._curve is not None:
                self._curve.apply(sock)
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(message).encode("utf-8")
        for _attempt in range(max(self.retries, 1)):
            try:
                sock = self._socket()
                sock.send(payload)
                if sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                    reply = json.loads(sock.recv().decode("utf-8"))
                    if not isinstance(reply, dict):
                        raise TransferError(f"{self.endpoint} sent a reply that is not an object")
                    return reply
            except (zmq.ZMQError, ValueError) as exc:
                self.close()
                raise TransferError(f"trigger server {self.endpoint}: {exc}") from exc
            except BaseException:
                self.close()
                raise
            self.close()  # no reply in time: this socket is stuck waiting for one
        raise TransferError(
            f"no reply from the trigger server at {self.endpoint} "
            f"after {self.retries} tries of {self.timeout:g} s; is `camxfer senders --zmq` "
            "running there on that port (camxfer status shows it)?"
        )

    def trigger(self, frame_id: str, ball_id: str) -> dict[str, Any]:
        return self.request({"frame_id": frame_id, "ball_id": ball_id})

    def status(self, event: str) -> dict[str, Any]:
        return self.request({"status": event})

    def wait(
        self, event: str, *, timeout: float, interval: float = 0.5, on_status: Any = None
    ) -> dict[str, Any]:
        """Poll the event's status until it is no longer running (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(event)
            if on_status:
                on_status(status)
            if not status.get("ok") or status.get("state") != "running":
                return status
            if time.monotonic() >= deadline:
                raise EventStillRunning(f"event {event} still running after {timeout:g} s")
            time.sleep(interval)
