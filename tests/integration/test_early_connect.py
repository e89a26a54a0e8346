"""A continuous or triggered sender opens its connections before the first frame exists, so
the first frame does not wait for a connect and handshake; never more of them than the run
has frames to send. `--once` still connects only once it knows each connection's count."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import (
    finish_sender,
    frame_name,
    make_frames,
    run_sender,
    sha256_file,
    wait_until,
)


def connected(receiver) -> list[str]:
    return [line for line in receiver.log().splitlines() if ": connected" in line]


def continuous_sender(senders, src: Path, receiver, conns: int, frames: int):
    """A sender waiting for `frames` frames from frame 1 on, over `conns` connections."""
    return senders(
        src, receiver.port, "--conns", str(conns), "--start-at", frame_name(1),
        "--max-files", str(frames),
    )  # fmt: skip


def test_connections_open_before_the_first_frame_and_then_carry_it(
    receivers, senders, src: Path, out: Path
) -> None:
    receiver = receivers(out)
    sender = continuous_sender(senders, src, receiver, conns=3, frames=4)
    wait_until(lambda: len(connected(receiver)) == 3, 20, "three connections, no frame yet")
    assert list(src.iterdir()) == []
    frames = make_frames(src, 4)
    result = finish_sender(sender)
    assert result.returncode == 0, result.stderr
    for frame in frames:
        assert sha256_file(out / frame.name) == sha256_file(frame)
    assert len(connected(receiver)) == 3  # the frames went on the connections already open


def test_no_more_early_connections_than_frames_asked(
    receivers, senders, src: Path, out: Path
) -> None:
    receiver = receivers(out)
    sender = continuous_sender(senders, src, receiver, conns=4, frames=1)
    wait_until(lambda: connected(receiver), 20, "the early connection")
    make_frames(src, 1)
    result = finish_sender(sender)
    assert result.returncode == 0, result.stderr
    assert len(connected(receiver)) == 1
    assert (out / frame_name(1)).exists()


def test_once_connects_only_with_its_count(receivers, src: Path, out: Path) -> None:
    receiver = receivers(out)
    make_frames(src, 6)
    result = run_sender(src, receiver.port, "--once", "--conns", "3")
    assert result.returncode == 0, result.stderr
    lines = connected(receiver)
    assert len(lines) == 3 and all("announcing 2 files" in line for line in lines)
