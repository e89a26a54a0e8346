"""A sender run whose own loop fails (a bug, a folder it cannot read) ends with its workers:
after `SendRun.run` has raised, none of them is left sending or holding a connection open to
the receiver, as they would be in a trigger server that goes on serving.

The failure is injected into a real run (real receiver, real sockets): the planner's second
scan raises."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from camxfer.send import sender
from camxfer.send.options import SendOptions
from tests.conftest import make_frames, wait_until


class FailingPlanner(sender.Planner):
    def scan(self):
        self.scans = getattr(self, "scans", 0) + 1
        if self.scans > 1:
            raise RuntimeError("the planner failed")
        return super().scan()


def connection_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camxfer-conn-")]


def test_a_failing_run_takes_its_connection_workers_with_it(
    receivers, src: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_frames(src, 3)
    receiver = receivers(out)
    monkeypatch.setattr(sender, "Planner", FailingPlanner)
    opts = SendOptions(src_dir=src, port=receiver.port, conns=3, max_files=10)

    with pytest.raises(RuntimeError, match="the planner failed"):
        sender.SendRun(opts).run()

    wait_until(lambda: not connection_workers(), 15, "the connection workers to end")
    wait_until(
        lambda: receiver.log().count("connection closed") >= 3, 15, "the receiver to see them close"
    )
