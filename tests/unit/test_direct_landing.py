"""Landing with O_DIRECT (camxfer.recv.direct) on this machine's real filesystem: every size,
around the block and stage boundaries, lands byte for byte with its exact length, through a
file really opened with O_DIRECT; a write the device refuses falls back to ordinary writes with
the file still whole; a bad body still never lands."""

from __future__ import annotations

import errno
import mmap
import os
import random
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from camxfer.recv import direct
from camxfer.recv.direct import ALIGN, STAGE_BYTES, DirectWriter
from camxfer.recv.landing import ChecksumMismatch, FileLanding, LandingRoot
from tests.conftest import checksum

SIZES = [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, STAGE_BYTES - 1, STAGE_BYTES, 3 * STAGE_BYTES + 123]


def chunks(data: bytes, seed: int) -> list[memoryview]:
    """The body in uneven pieces, as receives hand it over."""
    rng, view, pieces, at = random.Random(seed), memoryview(data), [], 0
    while at < len(data):
        step = rng.choice([1, 7, 4096, 65536, 300_000])
        pieces.append(view[at : at + step])
        at += step
    return pieces


def open_flags(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


@pytest.fixture
def root(tmp_path: Path):
    landing_root = LandingRoot(tmp_path / "out")
    yield landing_root
    landing_root.close()


@pytest.fixture
def stage():
    buffer = direct.STAGES.take()
    yield buffer
    direct.STAGES.give(buffer)


@pytest.mark.parametrize("size", SIZES)
def test_every_size_lands_whole_through_o_direct(root: LandingRoot, stage, size: int) -> None:
    data = random.Random(size).randbytes(size)
    landing = FileLanding(root, ["ev"], "f.jpg", size, checksum(data), direct_stage=stage)
    assert landing.direct, "this filesystem takes O_DIRECT: the test needs it to"
    assert open_flags(landing._fd) & os.O_DIRECT
    for piece in chunks(data, size):
        landing.write(piece)
    landing.commit()
    landed = root.root / "ev" / "f.jpg"
    assert landed.stat().st_size == size
    assert landed.read_bytes() == data
    assert [p.name for p in (root.root / "ev").iterdir()] == ["f.jpg"]  # no temp left


@pytest.mark.parametrize("size", SIZES)
def test_every_size_lands_whole_when_received_into_the_stage(
    root: LandingRoot, stage, size: int
) -> None:
    """As the session takes a body: the start from its buffer (`write`), the rest received
    straight into the stage (`receive_room`, then `received`) in uneven pieces."""
    data = random.Random(size).randbytes(size)
    landing = FileLanding(root, ["ev"], "f.jpg", size, checksum(data), direct_stage=stage)
    pieces = chunks(data, size)
    if pieces:
        landing.write(pieces[0])
    for piece in pieces[1:]:
        while piece:
            room = landing.receive_room(len(piece))
            assert room is not None and 0 < len(room) <= len(piece)
            room[:] = piece[: len(room)]  # what a receive into it would put there
            landing.received(room)
            piece = piece[len(room) :]
    landing.commit()
    assert (root.root / "ev" / "f.jpg").read_bytes() == data


def test_a_failed_direct_write_takes_the_rest_of_the_body_and_lands_nothing(
    root: LandingRoot, stage
) -> None:
    """The file may not grow past one stage (RLIMIT_FSIZE: a real EFBIG from the kernel, as
    ENOSPC would come from a full disk): the second stage's write fails. The rest of the body
    must still be taken (the session stays in step with the sender), with no empty room
    offered (a zero-byte receive reads as the sender's close), and nothing lands."""
    data = random.Random(5).randbytes(3 * STAGE_BYTES)
    landing = FileLanding(root, ["ev"], "f.jpg", len(data), checksum(data), direct_stage=stage)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (STAGE_BYTES, hard))
    try:
        body = memoryview(data)
        while body:
            room = landing.receive_room(len(body))
            if room is None:  # after the failure: the bytes go by `write`, which drops them
                assert landing.error is not None
                landing.write(body[:65536])
                body = body[65536:]
                continue
            assert len(room) > 0
            room[:] = body[: len(room)]
            landing.received(room)
            body = body[len(room) :]
        with pytest.raises(OSError) as failure:
            landing.seal()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert failure.value.errno == errno.EFBIG
    assert list((root.root / "ev").iterdir()) == []


def test_a_landing_through_the_page_cache_has_no_room_to_receive_into(root: LandingRoot) -> None:
    landing = FileLanding(root, ["ev"], "f.jpg", 1, checksum(b"x"))
    assert landing.receive_room(1) is None
    landing.abort()


def test_a_short_body_never_lands(root: LandingRoot, stage) -> None:
    data = random.Random(1).randbytes(ALIGN + 10)
    landing = FileLanding(root, ["ev"], "f.jpg", len(data) + 1, checksum(data), direct_stage=stage)
    landing.write(memoryview(data))
    with pytest.raises(ChecksumMismatch):
        landing.seal()
    assert list((root.root / "ev").iterdir()) == []


@pytest.mark.parametrize("received", [False, True], ids=["written", "received"])
def test_a_write_the_device_refuses_falls_back_to_ordinary_writes(
    tmp_path: Path, received: bool
) -> None:
    """A stage one byte off alignment makes the O_DIRECT write fail with EINVAL, as a device
    with stricter needs would: the writer clears O_DIRECT and the file is still whole, whether
    its bytes were copied into the stage or received there."""
    backing = mmap.mmap(-1, STAGE_BYTES + ALIGN)
    misaligned = memoryview(backing)[1 : 1 + STAGE_BYTES]
    data = random.Random(2).randbytes(2 * STAGE_BYTES + 5)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        writer = DirectWriter(fd, misaligned)  # type: ignore[arg-type]
        for piece in chunks(data, 3):
            while received and piece:
                room = writer.room(len(piece))
                room[:] = piece[: len(room)]
                writer.received(len(room))
                piece = piece[len(room) :]
            if piece:
                writer.write(piece)
        writer.finish()
        assert not open_flags(fd) & os.O_DIRECT
    finally:
        os.close(fd)
    assert path.read_bytes() == data


@pytest.fixture
def ramfs(tmp_path: Path):
    """A ramfs mount: it refuses O_DIRECT opens with EINVAL, after making the file."""
    mount = tmp_path / "ramfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "ramfs", "none", str(mount)], check=False).returncode:
        pytest.skip("cannot mount a ramfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed", "named"])
def test_a_filesystem_without_direct_io_is_written_normally(
    ramfs: Path, stage, unnamed: bool
) -> None:
    """The refused open leaves no file behind, the file lands buffered, and the root stops
    asking; with an unnamed file and with a named temporary (filesystems without O_TMPFILE)."""
    root = LandingRoot(ramfs / "out")
    root.unnamed_possible = unnamed
    try:
        data = b"frame" * 1000
        for name in ("a.jpg", "b.jpg"):
            landing = FileLanding(root, [], name, len(data), checksum(data), direct_stage=stage)
            assert not landing.direct
            assert not root.direct_possible
            landing.write(memoryview(data))
            landing.commit()
    finally:
        root.close()
    assert sorted(p.name for p in (ramfs / "out").iterdir()) == ["a.jpg", "b.jpg"]
    assert (ramfs / "out" / "b.jpg").read_bytes() == data


def test_auto_lands_directly_only_while_others_write() -> None:
    own = 20 << 20
    assert not direct.others_writing(own, own + (10 << 20))  # a bulk run's own connections
    assert direct.others_writing(own, own + (1 << 30))  # cameras writing their rings
    assert not direct.others_writing(own, None)
    assert direct.wanted("auto", others_writing=True)
    assert not direct.wanted("auto", others_writing=False)
    assert direct.wanted("always", others_writing=False)
    assert not direct.wanted("never", others_writing=True)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


FAST = (1 << 20) / 4e9  # CPU seconds for 1 MiB at 4 GB/s
SLOW = (1 << 20) / 0.3e9


def test_a_slow_page_cache_sends_files_direct_with_a_buffered_probe_now_and_then() -> None:
    clock = Clock()
    cost = direct.PageCacheCost(clock)
    assert not cost.skip()  # nothing measured yet: buffered
    for _ in range(direct.MIN_READINGS):
        cost.record(1 << 20, FAST)
    assert not cost.slow and not cost.skip()
    cost.record(1 << 20, SLOW)  # one slow file among fast ones: still fast
    cost.record(1 << 20, SLOW)
    assert not cost.slow
    cost.record(1 << 20, SLOW)  # most of the last readings slow
    assert cost.slow
    assert cost.skip() and cost.skip()
    clock.now += direct.PROBE_SECONDS
    assert not cost.skip()  # the probe: this one file goes buffered
    assert cost.skip()  # and the next ones direct again
    for _ in range(2):
        cost.record(1 << 20, FAST)  # probes find the page cache fast again
        assert cost.slow
        clock.now += direct.PROBE_SECONDS
        assert not cost.skip()
    cost.record(1 << 20, FAST)
    assert not cost.slow and not cost.skip()


def test_a_forked_workers_slow_first_write_does_not_send_files_direct() -> None:
    cost = direct.PageCacheCost(Clock())
    cost.record(1 << 20, SLOW)  # the first write also copies pages shared with the parent
    assert cost.rate is None and not cost.skip()  # too few readings to judge
    cost.record(1 << 20, FAST)
    cost.record(1 << 20, FAST)
    assert cost.rate == pytest.approx(4e9)
    assert not cost.slow and not cost.skip()


def test_readings_too_small_to_mean_anything_are_ignored() -> None:
    cost = direct.PageCacheCost()
    for _ in range(direct.MIN_READINGS):
        cost.record(direct.MEASURED_MIN_BYTES - 1, 1.0)
        cost.record(1 << 20, 0.0)
    assert cost.rate is None and not cost.slow


def test_a_buffered_landing_measures_the_page_cache_and_a_direct_one_does_not(
    root: LandingRoot, stage
) -> None:
    data = random.Random(3).randbytes(3 * direct.TIMED_BYTES)
    for n in range(direct.MIN_READINGS):
        buffered = FileLanding(root, ["ev"], f"{n}.jpg", len(data), checksum(data))
        for piece in chunks(data, 3):
            buffered.write(piece)
        buffered.commit()
    measured = root.page_cache.rate
    assert measured is not None and measured > 0
    direct_landing = FileLanding(
        root, ["ev"], "b.jpg", len(data), checksum(data), direct_stage=stage
    )
    direct_landing.write(memoryview(data))
    direct_landing.commit()
    assert root.page_cache.rate == measured
    assert (root.root / "ev" / "0.jpg").read_bytes() == (root.root / "ev" / "b.jpg").read_bytes()
