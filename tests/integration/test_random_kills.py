"""kill -9 at random points, seeded: of a receiver worker, of the whole receiver, of a sender
(`camxfer send`, and the trigger server running an event's senders).

Each iteration sends a fresh batch of frames into its own destination folder and SIGKILLs
one victim (chosen by pid, never by name) at a random moment while frames are in flight; the
receiver is restarted or the sender run again as an operator or a supervisor would, and the
checker then requires every frame landed exactly once and whole, with no temporary left.

Frames go through `tests/relay.py` with a little latency, so a run lasts long enough for the
kill to land mid-transfer on a fast machine. The seed is printed; CAMXFER_FAULT_SEED replays
it and CAMXFER_FAULT_ITERATIONS runs more iterations per victim (default 2, which keeps the
three tests around half a minute).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.checker import settled, sha256_bytes, snapshot
from tests.conftest import (
    finish_sender,
    make_frames,
    pid_alive,
    run_sender,
    temps_under,
    wait_until,
)
from tests.relay import Relay, Toxics

pytestmark = pytest.mark.timeout(300)

ITERATIONS = int(os.environ.get("CAMXFER_FAULT_ITERATIONS") or 2)
FILES = 60
SIZE = 384 * 1024


@pytest.fixture
def slow_link() -> Iterator[Callable[[int], Relay]]:
    """`slow_link(port)`: a relay to the receiver on `port` adding 10 ms per 64 KiB chunk."""
    relays: list[Relay] = []

    def make(port: int) -> Relay:
        relay = Relay(("127.0.0.1", port), Toxics(latency=0.01)).__enter__()
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        relay.close()


def fault_rng(victim: str) -> random.Random:
    seed = int(os.environ.get("CAMXFER_FAULT_SEED") or random.randrange(1 << 32))
    print(
        f"\n{victim}: fault seed {seed} (replay with CAMXFER_FAULT_SEED={seed}), "
        f"{ITERATIONS} iterations"
    )
    return random.Random(seed)


def landed_count(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(1 for name in os.listdir(folder) if not name.startswith("."))


def wait_mid_transfer(rng: random.Random, folder: Path, at_most: int = FILES // 2) -> None:
    """Wait until some frames landed, then a random extra moment: the kill comes mid-run."""
    wait_until(lambda: landed_count(folder) >= rng.randrange(1, at_most), 60, "frames to land")
    time.sleep(rng.uniform(0.0, 0.15))


def batch(src_root: Path, index: int) -> tuple[Path, dict[str, set[str]]]:
    folder = src_root / f"batch{index}"
    make_frames(folder, FILES, size=SIZE)
    return folder, snapshot(folder)


def test_kill_9_a_receiver_worker_at_random_points(
    receivers, senders, slow_link, tmp_path: Path
) -> None:
    rng = fault_rng("receiver worker")
    out = tmp_path / "out"
    receiver = receivers(out, "--workers", "2", "--use-dest-paths")
    link = slow_link(receiver.port)
    mid_file = 0
    for index in range(ITERATIONS):
        src, expected = batch(tmp_path / "src", index)
        dest = out / f"run{index}"
        sender = senders(
            src, link.port, "--once", "--conns", "4", "--dest-path", dest.name, "--json-stats"
        )
        wait_mid_transfer(rng, dest)
        workers = receiver.workers()
        victim = rng.choice(workers)
        mid_file += bool(temps_under(dest))
        os.kill(victim, signal.SIGKILL)
        print(f"  iteration {index}: killed worker {victim} with {landed_count(dest)} landed")
        result = finish_sender(sender, timeout=120)
        assert result.returncode == 0, result.stderr
        settled(expected, dest, result.stats, complete=True).assert_ok(f"iteration {index}")
        wait_until(lambda v=victim: f"(pid {v}) died" in receiver.log(), 10, "the restart")
        wait_until(lambda: len(receiver.workers()) == 2, 20, "the worker to be replaced")
    assert receiver.process.poll() is None
    print(f"  kills survived: {ITERATIONS} ({mid_file} with a file half written)")


def test_kill_9_the_whole_receiver_at_random_points(
    receivers, senders, slow_link, tmp_path: Path
) -> None:
    rng = fault_rng("whole receiver")
    out = tmp_path / "out"
    receiver = receivers(out, "--workers", "2", "--use-dest-paths")
    link = slow_link(receiver.port)
    for index in range(ITERATIONS):
        src, expected = batch(tmp_path / "src", index)
        dest = out / f"run{index}"
        sender = senders(
            src,
            link.port,
            "--once",
            "--conns",
            "4",
            "--retries",
            "20",
            "--dest-path",
            dest.name,
            "--json-stats",
        )
        wait_mid_transfer(rng, dest)
        mid_run = landed_count(dest) < FILES
        # Parent and workers at once, as a crash of the process group would.
        victims = [receiver.pid, *receiver.workers()]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        receiver.process.wait(10)
        wait_until(lambda v=victims: not any(pid_alive(p) for p in v), 10, "the receiver to die")
        print(f"  iteration {index}: killed receiver {victims} with {landed_count(dest)} landed")
        time.sleep(rng.uniform(0.0, 1.0))  # down for a moment; the sender backs off meanwhile
        receiver = receivers(out, "--workers", "2", "--use-dest-paths", port=receiver.port)
        result = finish_sender(sender, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stats["retries"] >= 1 or not mid_run
        settled(expected, dest, result.stats, complete=True).assert_ok(f"iteration {index}")
    print(f"  kills survived: {ITERATIONS}")


def test_kill_9_a_sender_at_random_points_then_rerun(
    receivers, senders, slow_link, tmp_path: Path
) -> None:
    rng = fault_rng("sender")
    out = tmp_path / "out"
    receiver = receivers(out, "--workers", "2", "--use-dest-paths")
    link = slow_link(receiver.port)
    for index in range(ITERATIONS):
        src, expected = batch(tmp_path / "src", index)
        dest = out / f"run{index}"
        args = ("--once", "--conns", "4", "--dest-path", dest.name, "--json-stats")
        sender = senders(src, link.port, *args)
        wait_mid_transfer(rng, dest)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
        before = landed_count(dest)
        print(f"  iteration {index}: killed sender {sender.pid} with {before} landed")
        # The killed run left no report: what it had in flight is unknown. What landed must
        # be whole, and the receiver must drop the half-received file of the dead connection.
        settled(expected, dest).assert_ok(f"iteration {index}, after the kill")
        result = run_sender(src, link.port, *args, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stats["duplicates"] >= before  # landed ones are acknowledged, not copied
        settled(expected, dest, result.stats, complete=True).assert_ok(f"iteration {index}")
    print(f"  kills survived: {ITERATIONS}")


def test_kill_9_the_trigger_server_mid_event_then_retrigger(tmp_path: Path) -> None:
    """The trigger server runs the senders of an event in its own process: kill -9 it while
    an event's live frames are being sent, start it again and repeat the trigger. The new
    run resends what it cannot know landed; the receiver answers those as duplicates, so
    every frame of the event lands exactly once."""
    from fleet_helpers import frame_bytes as camera_bytes
    from fleet_helpers import make_layout, receivers, trigger_server

    from camxfer.fleet.trigger_client import TriggerClient
    from camxfer.frames import frame_name as camera_frame

    rng = fault_rng("trigger server")
    cameras = ["cam01", "cam02"]
    layout = make_layout(tmp_path / "fleet", cameras)
    with receivers(layout):
        for index in range(ITERATIONS):
            first = 100 * index
            numbers = range(first, first + 10)  # the trigger server's --max-files
            ball = f"ball{index}"
            stop = threading.Event()

            def camera(numbers: range = numbers, stop: threading.Event = stop) -> None:
                for number in numbers:  # live, 10 frames a second
                    for cam in cameras:
                        tmp = layout.src(cam) / f".{camera_frame(cam, number)}"
                        tmp.write_bytes(camera_bytes(cam, number))
                        tmp.rename(layout.src(cam) / camera_frame(cam, number))
                    if stop.wait(0.1):
                        return

            writer = threading.Thread(target=camera, daemon=True)
            with trigger_server(layout) as server:
                client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=10)
                event = client.trigger(camera_frame(cameras[0], first), ball)["event"]
                writer.start()
                landed = layout.landed(cameras[0], ball)
                wait_mid_transfer(rng, landed, at_most=6)
                server.process.kill()
                server.process.wait(10)
                print(
                    f"  iteration {index}: killed the trigger server, {landed_count(landed)} landed"
                )
            writer.join(30)
            with trigger_server(layout):
                client = TriggerClient("127.0.0.1", layout.zmq_port, timeout=10)
                assert client.trigger(camera_frame(cameras[0], first), ball)["event"] == event
                status = client.wait(event, timeout=60)
                assert status["state"] == "done", status
            for cam in cameras:
                expected = {
                    camera_frame(cam, n): sha256_bytes(camera_bytes(cam, n)) for n in numbers
                }
                settled(expected, layout.landed(cam, ball), complete=True).assert_ok(
                    f"iteration {index}, {cam}"
                )
    print(f"  kills survived: {ITERATIONS}")
