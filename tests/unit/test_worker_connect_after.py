"""A connection worker told to connect early after an event (`connect_after`: the planner's
first scan) does not connect before it is set, and connects at once when it is: at a trigger,
the first connection carries the first file while the others wait for the scan."""

from __future__ import annotations

import queue
import socket
import threading
from pathlib import Path

import pytest

from camxfer.send.options import SendOptions
from camxfer.send.worker import ConnectionWorker, WorkQueue


def test_a_worker_connects_early_only_once_its_event_is_set(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    scanned, stop_taking, abandon = threading.Event(), threading.Event(), threading.Event()
    work = WorkQueue()
    worker = ConnectionWorker(
        1,
        SendOptions(src_dir=tmp_path, host="127.0.0.1", port=port),
        work,
        queue.Queue(),
        announce_counts=False,
        stop_taking=stop_taking,
        abandon=abandon,
        connect_early=True,
        connect_after=scanned,
    )
    worker.start()
    try:
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.accept()  # no connection while the scan is not done
        scanned.set()
        listener.settimeout(10)
        conn, _ = listener.accept()
        conn.close()  # no handshake reply: the worker gives up on this early connection
    finally:
        scanned.set()
        work.close()
        stop_taking.set()
        worker.join(timeout=15)
        listener.close()
    assert not worker.is_alive()
