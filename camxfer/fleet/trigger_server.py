"""The ZMQ trigger server: takes `{"frame_id", "ball_id"}` and starts an event; answers status.

REP sockets must answer every request before they can take the next (RELIABILITY-NOTES §6),
so every path through `handle()` returns a reply, whatever arrived: bad JSON, wrong types, a
multi-part message, an internal error. Replies go out as soon as a trigger is accepted; the
transfer runs in the background and `{"status": "<event id>"}` follows it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from camxfer import metrics
from camxfer.errors import TransferError
from camxfer.fleet.curve import CurveServerKeys, start_server
from camxfer.fleet.events import Event, EventBook
from camxfer.frames import parse_frame_id

log = logging.getLogger("camxfer.trigger")

MAX_MESSAGE_BYTES = 64 * 1024  # larger requests make libzmq drop the peer
RECENT_EVENTS = 10  # events listed by {"events": true}, newest first
SAFE_BALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# parse_frame_id's `\d` matches any Unicode digit ("frame_cam01_\u0661.jpg" would be frame 1):
# only printable ASCII without spaces gets that far, so a frame has exactly one id.
PRINTABLE_ASCII = re.compile(r"[!-~]{1,200}")


# libzmq reports a refused CURVE handshake only to a socket monitor (the peer just times out).
# A refused client reconnects every 100 ms: log one line per reason and 10 s, not each try.
REFUSAL_LOG_INTERVAL = 10.0
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def refusal_reason(event: int, value: int) -> str:
    """Why libzmq refused a client, from a monitor event (zmq_socket_monitor(3))."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "its key is not among the allowed client keys"
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "it does not speak CURVE"
    if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "it expects another server key, or its handshake was damaged"
    return "its handshake failed"


class BadRequest(Exception):
    """A request the server answers with {"ok": false, "error": ...}."""


def parse_request(parts: list[bytes]) -> dict[str, Any]:
    if len(parts) != 1:
        raise BadRequest(f"expected a single-part message, got {len(parts)} parts")
    try:
        message = json.loads(parts[0].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"not valid JSON: {exc}") from None
    except RecursionError:  # "[[[...]]]" well within MAX_MESSAGE_BYTES: the client's fault
        raise BadRequest("not valid JSON: nested too deeply") from None
    if not isinstance(message, dict):
        raise BadRequest("expected a JSON object")
    return message


def validate_trigger(message: dict[str, Any]) -> tuple[str, int]:
    """Return (ball_id, frame number) of a trigger, or raise BadRequest saying what is wrong."""
    unknown = set(message) - {"frame_id", "ball_id"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    for key in ("frame_id", "ball_id"):
        if key not in message:
            raise BadRequest(f"missing field {key!r}")
        if not isinstance(message[key], str):
            raise BadRequest(f"{key} must be a string, got {type(message[key]).__name__}")
    ball_id = message["ball_id"]
    if not SAFE_BALL_ID.fullmatch(ball_id):
        raise BadRequest(
            f"ball_id {ball_id[:80]!r} is not a safe folder name "
            "(letters, digits, '_', '-', '.'; not starting with '.'; at most 64 characters)"
        )
    frame_id = message["frame_id"]
    if not PRINTABLE_ASCII.fullmatch(frame_id):
        raise BadRequest(
            f"frame id {frame_id[:80]!r} is not a frame file name "
            "like 'frame_camera01_000046836.jpg'"
        )
    try:
        frame = parse_frame_id(frame_id)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return ball_id, frame.number


class TriggerServer:
    def __init__(
        self,
        book: EventBook,
        bind: str,
        *,
        context: zmq.Context | None = None,
        curve: CurveServerKeys | None = None,
    ) -> None:
        self.book = book
        self.bind = bind
        self.stop = threading.Event()
        self._context = context or zmq.Context.instance()
        self.socket = self._context.socket(zmq.REP)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.socket.setsockopt(zmq.LINGER, 0)
        self._authenticator = None
        self._monitor: zmq.Socket | None = None
        self.refused = 0  # clients CURVE turned away
        self._last_refusal: tuple[str, float] = ("", 0.0)  # reason and time last logged
        self._start_after_reply: Event | None = None
        try:
            if curve is not None:  # before bind: no connection may come in unchecked
                self._authenticator = start_server(self._context, self.socket, curve)
                self._monitor = self.socket.get_monitor_socket(HANDSHAKE_FAILURES)
            self.socket.bind(bind)
        except zmq.ZMQError as exc:
            self._close()
            raise TransferError(
                f"cannot bind the trigger socket to {bind}: {exc}; stop the other trigger "
                "server there or choose another --zmq-port"
            ) from exc
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._monitor is not None:
            self.socket.disable_monitor()
            self._monitor.close()
            self._monitor = None
        self.socket.close()
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def handle(self, parts: list[bytes]) -> dict[str, Any]:
        try:
            message = parse_request(parts)
            if "status" in message:
                key = message["status"]
                if not isinstance(key, str):
                    raise BadRequest("status must be an event id string")
                event = self.book.get(key)
                if event is None:
                    raise BadRequest(f"no event {key[:80]!r}")
                return event.status()
            if message.get("list") is True:
                return {"ok": True, "events": {k: e.state for k, e in self.book.events.items()}}
            if message.get("events") is True:
                return {"ok": True, "events": self.recent_events()}
            ball_id, number = validate_trigger(message)
            event = self.book.prepare(ball_id, number)
            # Started once the reply is out: starting a camera's thread hands it the GIL
            # for up to 5 ms, and six cameras' threads delayed the reply by 10-24 ms.
            self._start_after_reply = event
            log.info(
                "trigger: ball %s from frame %d -> event %s",
                ball_id,
                number,
                event.id,
                extra={"event": "trigger_accepted"},
            )
            self._count("accepted")
            return {"ok": True, "event": event.id}
        except BadRequest as exc:
            log.warning(
                "bad request: %s", exc, extra={"event": "trigger_refused", "reason": str(exc)}
            )
            self._count("refused")
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # the REP lockstep needs a reply even for our own bugs
            log.exception("error handling a request")
            return {"ok": False, "error": f"internal error: {exc}"}

    def _log_refusals(self) -> None:
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            self.refused += 1
            reason = refusal_reason(event["event"], event["value"])
            now = time.monotonic()
            last_reason, last_time = self._last_refusal
            if reason != last_reason or now - last_time >= REFUSAL_LOG_INTERVAL:
                self._last_refusal = (reason, now)
                log.warning("refused a trigger client: %s; %d refused so far", reason, self.refused)

    def recent_events(self, limit: int = RECENT_EVENTS) -> list[dict[str, Any]]:
        """The newest events' status, without their per-frame problem lists (kept small)."""
        events = sorted(self.book.events.values(), key=lambda e: e.started, reverse=True)
        listed = []
        for event in events[:limit]:
            status = event.status()
            for camera in status["cameras"].values():
                camera.pop("problems", None)
            listed.append(status)
        return listed

    def _count(self, result: str) -> None:
        if (recorder := metrics.recorder()) is not None:
            recorder.triggers.labels(result).inc()

    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        try:
            while not self.stop.is_set():
                if not poller.poll(200):
                    continue
                self._log_refusals()
                try:
                    parts = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    continue
                reply = self.handle(parts)
                try:
                    self.socket.send(json.dumps(reply).encode("utf-8"))
                finally:
                    event, self._start_after_reply = self._start_after_reply, None
                    if event is not None:
                        event.start()
        finally:
            self._close()
