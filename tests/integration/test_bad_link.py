"""A bad link between sender and receiver: latency, tiny segments, stalls, resets at random
offsets and flipped bytes. The sender backs off, reconnects and resends; a flipped byte is
caught by the checksum and resent, never landed; in the end every frame lands exactly once.

The link is `tests/relay.py`, a fault-injecting TCP relay on loopback (these machines' kernels
have no `tc netem`). Randomness is seeded; the seed is printed so a failure can be replayed
with CAMXFER_FAULT_SEED.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from camxfer import protocol
from tests.checker import settled, snapshot
from tests.conftest import frame_name, make_frames, run_sender
from tests.relay import Relay, Toxics

pytestmark = pytest.mark.timeout(120)


def fault_seed() -> int:
    seed = int(os.environ.get("CAMXFER_FAULT_SEED") or random.randrange(1 << 32))
    print(f"fault seed: {seed} (replay with CAMXFER_FAULT_SEED={seed})")
    return seed


def body_offset(name: str) -> int:
    """Upstream offset of the first body byte of a connection's first file."""
    return protocol.HELLO_SIZE + protocol.FILE_HEADER_SIZE + len(name.encode())


def test_latency_and_tiny_segments_land_everything(receivers, src: Path, out: Path) -> None:
    make_frames(src, 30, size=3000)
    make_frames(src, 1, size=300_000, first=31)
    expected = snapshot(src)
    receiver = receivers(out)
    toxics = Toxics(latency=0.002, slice_bytes=7)
    with Relay(("127.0.0.1", receiver.port), toxics) as relay:
        result = run_sender(src, relay.port, "--once", "--conns", "2", "--json-stats", timeout=90)
    assert result.returncode == 0, result.stderr
    settled(expected, out, result.stats, complete=True).assert_ok()
    assert relay.counters.upstream_bytes > 300_000


def test_resets_at_random_offsets_are_resumed(receivers, src: Path, out: Path) -> None:
    rng = random.Random(fault_seed())
    make_frames(src, 40, size=100_000)
    expected = snapshot(src)
    # The first 10 connections are reset somewhere in their first 600 KB (mid-hello,
    # mid-header, mid-body, between files); later ones are left alone so the run can end.
    offsets = [rng.randrange(1, 600_000) for _ in range(10)]
    print(f"reset offsets: {offsets}")
    receiver = receivers(out, "--workers", "2")
    toxics = Toxics(reset_at=lambda index: offsets[index] if index < len(offsets) else None)
    with Relay(("127.0.0.1", receiver.port), toxics) as relay:
        result = run_sender(
            src, relay.port, "--once", "--conns", "2", "--retries", "30", "--json-stats"
        )
    assert result.returncode == 0, result.stderr
    assert relay.counters.resets >= 2, relay.counters
    assert result.stats["retries"] >= 1
    settled(expected, out, result.stats, complete=True).assert_ok()
    print(f"resets survived: {relay.counters.resets}")


def test_stall_longer_than_the_ack_timeout_is_survived(
    receivers, senders, src: Path, out: Path
) -> None:
    make_frames(src, 40, size=200_000)
    expected = snapshot(src)
    receiver = receivers(out)
    toxics = Toxics(latency=0.01)
    with Relay(("127.0.0.1", receiver.port), toxics) as relay:
        toxics.stall(4.0)  # the sender's first connections stall at once
        result = run_sender(
            src,
            relay.port,
            "--once",
            "--conns",
            "2",
            "--ack-timeout",
            "1.5",
            "--retries",
            "30",
            "--json-stats",
        )
    assert result.returncode == 0, result.stderr
    assert "no reply from the receiver" in result.stderr or "stalled" in result.stderr
    assert result.stats["retries"] >= 1
    settled(expected, out, result.stats, complete=True).assert_ok()


def test_flipped_byte_is_caught_by_the_checksum_and_resent(receivers, src: Path, out: Path) -> None:
    rng = random.Random(fault_seed())
    size = 200_000
    make_frames(src, 20, size=size)
    expected = snapshot(src)
    receiver = receivers(out)
    # Each of the 3 connections flips one byte inside the body of the first file it sends.
    first_body = body_offset(frame_name(1))
    flips = [first_body + rng.randrange(size) for _ in range(3)]
    toxics = Toxics(corrupt_at=lambda index: flips[index] if index < len(flips) else None)
    with Relay(("127.0.0.1", receiver.port), toxics) as relay:
        result = run_sender(src, relay.port, "--once", "--conns", "3", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert relay.counters.corrupted == 3
    assert receiver.log().count("do not match the sender's checksum") == 3
    assert result.stats["retries"] >= 3
    settled(expected, out, result.stats, complete=True).assert_ok()


def test_single_bit_error_in_a_file_name_never_lands_a_stranger(
    receivers, src: Path, out: Path
) -> None:
    """One flipped bit in a header's file name (TCP's own checksum missed it) would spell
    another valid name: the header check refuses the header, the connection is closed, and
    the sender resends the file under its real name."""
    make_frames(src, 3, size=10_000)
    expected = snapshot(src)
    receiver = receivers(out)
    name = frame_name(1)  # ...000000001.jpg: the last digit's low bit makes it ...0.jpg
    last_digit = protocol.HELLO_SIZE + protocol.FILE_HEADER_SIZE + len(name) - len(".jpg") - 1
    toxics = Toxics(corrupt_at=lambda i: last_digit if i == 0 else None, corrupt_mask=0x01)
    with Relay(("127.0.0.1", receiver.port), toxics) as relay:
        result = run_sender(src, relay.port, "--once", "--conns", "1", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert relay.counters.corrupted == 1
    assert "header check mismatch" in receiver.log()
    settled(expected, out, result.stats, complete=True).assert_ok()


def test_single_bit_error_in_an_acknowledgement_never_miscounts(
    receivers, src: Path, out: Path
) -> None:
    """One flipped bit in the sequence number of an acknowledgement could make the sender
    count the wrong file as landed: the reply check refuses the reply, the sender drops the
    connection and resends what it had not seen acknowledged."""
    make_frames(src, 5, size=10_000)
    expected = snapshot(src)
    receiver = receivers(out)
    # The hello's reply (with its message "camxfer/1"), then the first file's reply: flip
    # the lowest bit of its sequence number (1 -> 0).
    first_ack_seq_low = protocol.REPLY_SIZE + len(f"camxfer/{protocol.VERSION}") + 15
    toxics = Toxics(
        corrupt_reply_at=lambda i: first_ack_seq_low if i == 0 else None, corrupt_mask=0x01
    )
    with Relay(("127.0.0.1", receiver.port), toxics) as relay:
        result = run_sender(
            src, relay.port, "--once", "--conns", "1", "--window", "1", "--json-stats"
        )
    assert result.returncode == 0, result.stderr
    assert relay.counters.corrupted == 1
    assert "reply check mismatch" in result.stderr
    assert result.stats["duplicates"] >= 1  # the landed file was resent and answered so
    settled(expected, out, result.stats, complete=True).assert_ok()
