"""A trigger server keeps a bounded number of ended events; running ones are never dropped."""

from __future__ import annotations

import time

from camxfer.fleet import events
from camxfer.fleet.events import EventBook, EventSettings


def test_oldest_ended_events_are_forgotten(monkeypatch) -> None:
    monkeypatch.setattr(events, "MAX_EVENTS_KEPT", 5)
    book = EventBook([], EventSettings())  # no cameras: each event ends at once
    for number in range(8):
        book.trigger("ball", number)
        deadline = time.monotonic() + 10
        while book.get(f"ball-{number}").ended is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    book.trigger("ball", 8)
    assert len(book.events) == 5
    assert "ball-8" in book.events and "ball-7" in book.events
    assert "ball-0" not in book.events
    # A forgotten event triggered again is simply a new event.
    again = book.trigger("ball", 0)
    assert again.id == "ball-0" and book.get("ball-0") is again
