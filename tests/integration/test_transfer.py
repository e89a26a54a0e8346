"""Moving frames end to end: a real sender process, a real receiver process, loopback TCP.

Every test asserts on what landed (names and sha256 of every byte), the sender's exit code and
its --json-stats counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from camxfer.send.connection import BODY_PIECE_BYTES
from tests.conftest import (
    MANIFEST_NAME,
    finish_sender,
    frame_name,
    free_port,
    make_frames,
    run_sender,
    temps_under,
    tree_hashes,
    wait_until,
)


def landed_names(out: Path) -> list[str]:
    return sorted(tree_hashes(out))


@pytest.mark.parametrize(
    "recv_args",
    [
        [],
        ["--workers", "3"],
        ["--workers", "3", "--reuseport"],
        ["--direct-io", "always"],
        ["--direct-io", "never"],
    ],
    ids=["one-worker", "three-workers", "three-workers-reuseport", "o-direct", "buffered"],
)
def test_bytes_identical_after_transfer(receivers, src: Path, out: Path, recv_args) -> None:
    make_frames(src, 40, size=64 * 1024)
    make_frames(src, 3, size=3 * 1024 * 1024 + 17, first=41)  # bigger than one recv buffer
    (src / "frame_camera01_000000044.jpg").write_bytes(b"")  # an empty frame is a frame too
    receiver = receivers(out, *recv_args)
    result = run_sender(src, receiver.port, "--once", "--conns", "4", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(src)
    stats = result.stats
    assert stats["ok"] is True
    assert (stats["files"], stats["duplicates"], stats["failed"]) == (44, 0, 0)
    assert stats["bytes"] == sum(p.stat().st_size for p in src.iterdir())


def test_acks_read_while_a_long_body_is_sent_are_kept(receivers, src: Path, out: Path) -> None:
    # Bodies over BODY_PIECE_BYTES go in pieces, and between them the sender reads what the
    # receiver answered: the acks of the files before, which must still count, once each.
    make_frames(src, 6, size=BODY_PIECE_BYTES * 2 + 12345)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--conns", "1", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(src)
    stats = result.stats
    assert (stats["files"], stats["duplicates"], stats["retries"]) == (6, 0, 0)


def test_selection_start_after_and_max_files(receivers, src: Path, out: Path) -> None:
    make_frames(src, 20)
    (src / "frame_camera01_000000012.png").write_bytes(b"not a jpg")
    (src / ".frame_camera01_000000013.jpg").write_bytes(b"hidden")
    (src / "frame_camera01_000000014.jpg.part").write_bytes(b"being written")
    receiver = receivers(out)
    result = run_sender(
        src,
        receiver.port,
        "--once",
        "--start-after",
        frame_name(5),
        "--max-files",
        "7",
        "--json-stats",
    )
    assert result.returncode == 0, result.stderr
    assert landed_names(out) == [frame_name(n) for n in range(6, 13)]
    assert result.stats["files"] == 7
    assert all(tree_hashes(out)[n] == tree_hashes(src)[n] for n in landed_names(out))


def test_selection_start_at_is_inclusive(receivers, src: Path, out: Path) -> None:
    make_frames(src, 10)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--start-at", frame_name(8))
    assert result.returncode == 0, result.stderr
    assert landed_names(out) == [frame_name(8), frame_name(9), frame_name(10)]


def test_selection_start_after_beyond_the_last_frame_sends_nothing(
    receivers, src: Path, out: Path
) -> None:
    make_frames(src, 5)
    receiver = receivers(out)
    result = run_sender(
        src, receiver.port, "--once", "--start-after", frame_name(5), "--json-stats"
    )
    assert result.returncode == 0, result.stderr
    assert landed_names(out) == []
    assert result.stats["files"] == 0


def test_selection_pattern_and_name_order(receivers, src: Path, out: Path) -> None:
    for name in ("delta.raw", "alpha.raw", "charlie.raw", "bravo.raw", "echo.jpg", "zulu.raw"):
        (src / name).write_bytes(name.encode() * 100)
    receiver = receivers(out)
    result = run_sender(
        src,
        receiver.port,
        "--once",
        "--pattern",
        "*.raw",
        "--start-after",
        "alpha.raw",
        "--max-files",
        "3",
        "--json-stats",
    )
    assert result.returncode == 0, result.stderr
    assert landed_names(out) == ["bravo.raw", "charlie.raw", "delta.raw"]
    assert result.stats["files"] == 3


def test_a_huge_max_files_range_is_reported_at_once(receivers, src: Path, out: Path) -> None:
    """--max-files as "as many as there are": the frames never written are counted missing,
    without walking the range number by number (a billion took a quarter of an hour)."""
    make_frames(src, 5)
    receiver = receivers(out)
    result = run_sender(
        src, receiver.port, "--once", "--json-stats", "--start-at", frame_name(1),
        "--max-files", "1000000000",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    stats = result.stats
    assert (stats["files"], stats["missing"]) == (5, 1_000_000_000 - 5)
    missing = [s["name"] for s in stats["skipped"]]
    assert missing == [frame_name(n) for n in range(6, 6 + 1000)]
    assert landed_names(out) == [frame_name(n) for n in range(1, 6)]


def test_selection_max_files_without_a_start(receivers, src: Path, out: Path) -> None:
    make_frames(src, 10, first=100)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--max-files", "4")
    assert result.returncode == 0, result.stderr
    assert landed_names(out) == [frame_name(n) for n in range(100, 104)]


def test_a_stray_numbered_name_sorting_first_does_not_take_the_frames_numbering(
    receivers, src: Path, out: Path
) -> None:
    """Numbering is read from the names; 'calib01.jpg' lists before the frames, and the run
    was numbered by it: it sent that file alone and reported success (exit 0)."""
    frames = make_frames(src, 10)
    (src / "calib01.jpg").write_bytes(b"\xff\xd8calibration\xff\xd9")
    os.utime(src / "calib01.jpg", (time.time() - 5, time.time() - 5))
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert landed_names(out) == sorted(path.name for path in frames)
    assert result.stats["files"] == 10


def test_unpadded_frame_numbers_are_sent_from_the_lowest(receivers, src: Path, out: Path) -> None:
    """img_10.jpg lists before img_5.jpg: the run started at 10 and never sent 5..9, yet
    reported success."""
    for number in range(5, 16):
        (src / f"img_{number}.jpg").write_bytes(number.to_bytes(2, "big") * 100)
        os.utime(src / f"img_{number}.jpg", (time.time() - 5, time.time() - 5))
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 11
    assert tree_hashes(out) == tree_hashes(src)


@pytest.mark.parametrize("bad", ["not utf-8", "over 1024 bytes"])
def test_a_name_the_protocol_cannot_carry_fails_alone(
    receivers, src: Path, out: Path, bad: str
) -> None:
    """A name read from disk that is not UTF-8, or a --preserve-structure path longer than a
    FILE header holds: encoding its header raised in the connection worker, which crashed
    (a traceback) and ended the whole run as an 'internal error'."""
    if bad == "not utf-8":
        bad_path = src / os.fsdecode(b"a\xff.jpg")  # lists before b.jpg and c.jpg
    else:
        bad_path = src.joinpath(*["d" * 200] * 6, "a.jpg")  # 1,200-odd bytes of path
        bad_path.parent.mkdir(parents=True)
    bad_path.write_bytes(b"\xff\xd8bad name\xff\xd9")
    (src / "b.jpg").write_bytes(os.urandom(500))
    (src / "c.jpg").write_bytes(os.urandom(500))
    for path in (bad_path, src / "b.jpg", src / "c.jpg"):
        os.utime(path, (time.time() - 5, time.time() - 5))
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--preserve-structure", "--json-stats")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    stats = result.stats
    assert "error" not in stats, stats
    assert (stats["files"], stats["failed"]) == (2, 1)
    assert [s["name"] for s in stats["skipped"]] == [str(bad_path.relative_to(src))]
    assert "cannot be sent" in stats["skipped"][0]["reason"]
    assert sorted(tree_hashes(out)) == ["b.jpg", "c.jpg"]


def test_preserve_structure_keeps_subfolders(receivers, src: Path, out: Path) -> None:
    make_frames(src, 2)
    make_frames(src / "camera02", 3, camera="camera02")
    make_frames(src / "camera03" / "deep", 2, camera="camera03")
    make_frames(src / ".hidden", 2, camera="hidden")
    receiver = receivers(out, "--use-dest-paths")
    result = run_sender(
        src,
        receiver.port,
        "--once",
        "--preserve-structure",
        "--dest-path",
        "ball_7",
        "--json-stats",
    )
    assert result.returncode == 0, result.stderr
    expected = {
        f"ball_7/{rel}": digest
        for rel, digest in tree_hashes(src).items()
        if not rel.startswith(".hidden/")
    }
    assert tree_hashes(out) == expected
    assert "ball_7/camera03/deep/frame_camera03_000000002.jpg" in expected
    assert result.stats["files"] == 7


def test_preserve_structure_sends_regular_files_only(receivers, src: Path, out: Path) -> None:
    """A FIFO named like a frame in a subfolder: the tree walk left out symlinks only, so the
    sender opened the FIFO to read it and blocked for ever (SIGTERM could not end it)."""
    (src / "sub").mkdir()
    (src / "a.jpg").write_bytes(os.urandom(300))
    os.mkfifo(src / "sub" / "x.jpg")
    for path in (src / "a.jpg", src / "sub" / "x.jpg"):
        os.utime(path, (time.time() - 5, time.time() - 5))
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--preserve-structure", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 1
    assert landed_names(out) == ["a.jpg"]


def test_legacy_mode_lands_in_out_dir(receivers, src: Path, out: Path) -> None:
    make_frames(src, 5)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(src)


def test_legacy_mode_refuses_a_dest_path(receivers, src: Path, out: Path) -> None:
    make_frames(src, 5)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--dest-path", "ball_1", "--json-stats")
    assert result.returncode == 1
    assert "--use-dest-paths" in result.stderr
    assert result.stats["failed"] == 5 and result.stats["files"] == 0
    assert list(out.rglob("*")) == []


def test_dest_path_relative_and_absolute_inside_out_dir(receivers, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_frames(src, 4)
    out = tmp_path / "x" / "mnt"
    receiver = receivers(out, "--use-dest-paths")
    relative = run_sender(src, receiver.port, "--once", "--dest-path", "ball_001/camera01")
    assert relative.returncode == 0, relative.stderr
    absolute = run_sender(src, receiver.port, "--once", "--dest-path", f"{out}/destination/")
    assert absolute.returncode == 0, absolute.stderr
    hashes = tree_hashes(src)
    assert tree_hashes(out) == {
        **{f"ball_001/camera01/{n}": h for n, h in hashes.items()},
        **{f"destination/{n}": h for n, h in hashes.items()},
    }


def test_dest_path_outside_out_dir_is_refused(receivers, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_frames(src, 3)
    out = tmp_path / "x" / "mnt"
    receiver = receivers(out, "--use-dest-paths")
    for dest in (f"{tmp_path}/elsewhere", "../escape", f"{out}/../mnt2"):
        result = run_sender(src, receiver.port, "--once", "--dest-path", dest, "--json-stats")
        assert result.returncode == 1, dest
        assert result.stats["failed"] == 3, dest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "src", "x"]
    assert list(out.rglob("*")) == []


def test_resend_gives_duplicates_not_copies(receivers, src: Path, out: Path) -> None:
    make_frames(src, 8)
    receiver = receivers(out)
    first = run_sender(src, receiver.port, "--once", "--json-stats")
    assert first.returncode == 0, first.stderr
    frames = [p for p in out.iterdir() if p.name != MANIFEST_NAME]  # the manifest is rewritten
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in frames}
    second = run_sender(src, receiver.port, "--once", "--json-stats")
    assert second.returncode == 0, second.stderr
    assert (second.stats["files"], second.stats["duplicates"]) == (8, 8)
    assert first.stats["duplicates"] == 0
    after = {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.iterdir()
        if p.name != MANIFEST_NAME
    }
    assert after == before  # no .1 copies, nothing rewritten
    assert tree_hashes(out) == tree_hashes(src)


def test_different_file_with_same_name_is_refused(receivers, tmp_path: Path, out: Path) -> None:
    first_src, second_src = tmp_path / "a", tmp_path / "b"
    make_frames(first_src, 3)
    make_frames(second_src, 3)  # same names, other random bytes
    receiver = receivers(out)
    assert run_sender(first_src, receiver.port, "--once").returncode == 0
    original = tree_hashes(out)
    result = run_sender(second_src, receiver.port, "--once", "--json-stats")
    assert result.returncode == 1
    assert result.stats["failed"] == 3 and result.stats["files"] == 0
    assert "different content" in result.stderr
    assert tree_hashes(out) == original == tree_hashes(first_src)
    assert temps_under(out) == []


def test_json_stats_counts(receivers, src: Path, out: Path) -> None:
    paths = make_frames(src, 12, size=10_000)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--conns", "3", "--json-stats")
    assert result.returncode == 0, result.stderr
    stats = result.stats
    assert stats["ok"] is True
    assert stats["files"] == 12 == len(list(out.glob("*.jpg")))
    assert stats["bytes"] == sum(p.stat().st_size for p in paths)
    for key in ("duplicates", "failed", "vanished", "missing", "abandoned"):
        assert stats[key] == 0, key
    assert stats["skipped"] == []
    assert set(stats["latency_ms"]) == {"p50", "p90", "p99", "max"}


def test_no_receiver_fails_every_file_in_bounded_time(src: Path) -> None:
    """Connection errors are retried with backoff, but once the receiver has been unreachable
    for a file's whole retry budget the queue fails together instead of file by file."""
    make_frames(src, 30)
    result = run_sender(
        src, free_port(), "--once", "--conns", "2", "--retries", "2", "--json-stats", timeout=60
    )
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert result.stats["files"] == 0 and result.stats["failed"] == 30


def test_a_stopped_run_lists_at_most_1000_abandoned_names(src: Path) -> None:
    """Like every other outcome, abandoned files are counted in full but listed only up to
    1,000 names: a run of a million files stopped early printed a million names."""
    make_frames(src, 1500, size=64)
    result = run_sender(src, free_port(), "--once", "--timeout", "1", "--json-stats")
    assert result.returncode == 1
    stats = result.stats
    assert stats["abandoned"] == 1500
    abandoned = [s for s in stats["skipped"] if s["reason"].startswith("abandoned")]
    assert len(abandoned) == 1000


def test_cleanup_part_files_removes_only_stale_ones(receivers, src: Path, out: Path) -> None:
    make_frames(src, 3)
    stale, fresh = src / "frame_camera01_000000009.jpg.part", src / "x.part"
    stale.write_bytes(b"left by a crashed writer")
    fresh.write_bytes(b"being written now")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--cleanup-part-files")
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and fresh.exists()
    assert sorted(tree_hashes(out)) == [frame_name(n) for n in (1, 2, 3)]


def test_verbose_logs_every_file(receivers, src: Path, out: Path) -> None:
    make_frames(src, 3)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--once", "--verbose")
    assert result.returncode == 0, result.stderr
    for number in (1, 2, 3):
        assert f"landed {frame_name(number)}" in result.stderr


def test_timeout_ends_a_continuous_sender_with_stats(receivers, src: Path, out: Path) -> None:
    make_frames(src, 4)
    receiver = receivers(out)
    result = run_sender(src, receiver.port, "--timeout", "1", "--json-stats", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 4
    assert tree_hashes(out) == tree_hashes(src)


def test_frames_numbered_below_the_run_after_it_started_are_named_in_a_warning(
    receivers, senders, src: Path, out: Path
) -> None:
    # A camera whose numbering starts again (its software restarted) writes frames below
    # the run's range: they are not sent, which must not go unsaid.
    make_frames(src, 3, first=5)
    receiver = receivers(out)
    sender = senders(src, receiver.port, "--start-at", frame_name(5), "--timeout", "3")
    wait_until(lambda: len(list(out.iterdir())) == 3, 20, "frames 5-7 to land")
    make_frames(src, 2, first=1)
    result = finish_sender(sender)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [frame_name(n) for n in (5, 6, 7)]
    warnings = [line for line in result.stderr.splitlines() if "below" in line]
    assert len(warnings) == 1, result.stderr
    assert frame_name(1) in warnings[0] and "numbering" in warnings[0]


def test_continuous_sender_picks_up_new_subfolders(
    receivers, senders, src: Path, out: Path
) -> None:
    make_frames(src / "a", 2, camera="a")
    receiver = receivers(out, "--use-dest-paths")
    sender = senders(
        src, receiver.port, "--preserve-structure", "--max-files", "5", "--dest-path", "d"
    )
    wait_until(lambda: len(tree_hashes(out)) == 2, 20, "the first two files")
    make_frames(src / "b" / "c", 3, camera="b")
    result = finish_sender(sender)
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == {f"d/{rel}": h for rel, h in tree_hashes(src).items()}


def test_continuous_sender_sends_new_files_in_every_subfolder(
    receivers, senders, src: Path, out: Path
) -> None:
    """Two cameras writing into their own subfolders at once: names were handed out strictly
    in name order over the whole tree, so once cam2/img_001.jpg went, every later cam1 file
    (cam1/... sorts below it) was never sent, and the run reported success."""
    (src / "cam1").mkdir()
    (src / "cam2").mkdir()
    receiver = receivers(out)
    sender = senders(
        src,
        receiver.port,
        "--preserve-structure",
        "--max-files",
        "8",
        "--timeout",
        "20",
        "--json-stats",
    )
    for number in range(1, 5):
        for camera in ("cam1", "cam2"):
            (src / camera / f"img_{number:03d}.jpg").write_bytes(os.urandom(300))
        # ordering only: each round is seen (and cam2's file sent) before the next
        wait_until(lambda n=number: f"cam2/img_{n:03d}.jpg" in tree_hashes(out), 20, "cam2's file")
    result = finish_sender(sender, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 8
    assert tree_hashes(out) == tree_hashes(src)


def test_connections_are_persistent_and_no_more_than_conns(receivers, src: Path, out: Path) -> None:
    make_frames(src, 60, size=2000)
    receiver = receivers(out, "--verbose")
    result = run_sender(src, receiver.port, "--once", "--conns", "3")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(out) == tree_hashes(src)
    # 60 files over 3 connections, each opened once (the receiver logs every connection).
    assert receiver.log().count(": connected") == 3


def test_every_documented_flag_is_accepted(receivers, src: Path, tmp_path: Path) -> None:
    make_frames(src, 12)
    (src / "old.part").write_bytes(b"x")
    out = tmp_path / "mnt"
    receiver = receivers(out, "--use-dest-paths", "--workers", "2", "--reuseport", "--verbose")
    result = run_sender(
        src,
        receiver.port,
        "--start-after",
        frame_name(2),
        "--pattern",
        "frame_*.jpg",
        "--conns",
        "2",
        "--lookahead",
        "2",
        "--stable-ms",
        "20",
        "--file-wait-ms",
        "5",
        "--poll-ms",
        "20",
        "--frame-timeout",
        "2",
        "--max-files",
        "8",
        "--dest-path",
        f"{out}/destination/",
        "--cleanup-part-files",
        "--timeout",
        "30",
        "--verbose",
        "--json-stats",
    )
    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 8
    landed = tree_hashes(out / "destination")
    assert sorted(landed) == [frame_name(n) for n in range(3, 11)]


def test_receiver_out_dir_defaults_to_the_current_folder(
    receivers, src: Path, tmp_path: Path
) -> None:
    make_frames(src, 3)
    here = tmp_path / "cwd"
    receiver = receivers(here, default_out_dir=True)
    result = run_sender(src, receiver.port, "--once")
    assert result.returncode == 0, result.stderr
    assert tree_hashes(here) == tree_hashes(src)
