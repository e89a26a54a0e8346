"""Group commit on the receiver: files pipelined on one connection are made durable together,
then linked and acknowledged in order. Mixed outcomes inside one batch each get their own reply,
and nothing but whole, verified files is ever visible.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

from camxfer import protocol
from camxfer.protocol import FileHeader, Status, new_hasher
from tests.conftest import temps_under, tree_hashes, wait_until
from tests.integration.test_receiver_robustness import Peer, file_message, hello


def corrupt_message(seq: int, name: str, data: bytes) -> bytes:
    """A FILE whose declared checksum does not match its body."""
    hasher = new_hasher()
    hasher.update(data + b"!")
    return FileHeader(seq, name, "", len(data), hasher.digest()).encode() + data


def test_one_batch_with_mixed_outcomes_replies_each_in_order(receivers, out: Path) -> None:
    receiver = receivers(out)
    frames = {f"frame_camera01_{i:09d}.jpg": bytes([i]) * (50_000 + i) for i in range(1, 9)}
    names = list(frames)
    batch = b"".join(
        [
            file_message(1, names[0], frames[names[0]]),
            file_message(2, names[1], frames[names[1]]),
            corrupt_message(3, names[2], frames[names[2]]),
            file_message(4, names[0], frames[names[0]]),  # same bytes again: duplicate
            file_message(5, names[1], b"different bytes"),  # same name, other bytes
            file_message(6, names[3], frames[names[3]]),
            file_message(7, "../escape.jpg", b"x"),
            file_message(8, names[4], frames[names[4]]),
            protocol.encode_end(9),
        ]
    )
    with hello(receiver.port) as peer:
        # Everything goes out before any reply is read, so the receiver sees one pipelined run.
        peer.sock.sendall(batch)
        peer.sock.shutdown(socket.SHUT_WR)
        replies = peer.until_closed()
    assert [(r.seq, r.status) for r in replies] == [
        (1, Status.OK),
        (2, Status.OK),
        (3, Status.CHECKSUM_MISMATCH),
        (4, Status.DUPLICATE),
        (5, Status.EXISTS_DIFFERENT),
        (6, Status.OK),
        (7, Status.UNSAFE_PATH),
        (8, Status.OK),
        (9, Status.OK),
    ]
    landed = tree_hashes(out)
    expected = {n: frames[n] for n in (names[0], names[1], names[3], names[4])}
    assert set(landed) == set(expected)
    for name, data in expected.items():
        assert (out / name).read_bytes() == data
    assert temps_under(out) == []
    assert not (out.parent / "escape.jpg").exists()


def test_connection_cut_mid_batch_acks_nothing_unlanded(receivers, out: Path) -> None:
    """Files sealed but not yet acknowledged when the sender vanishes leave no temp behind;
    anything that did land is whole."""
    receiver = receivers(out)
    data = {f"frame_camera01_{i:09d}.jpg": bytes([i]) * 200_000 for i in range(1, 6)}
    stream = b"".join(file_message(i, n, d) for i, (n, d) in enumerate(data.items(), 1))
    with hello(receiver.port) as peer:
        peer.sock.sendall(stream[: len(stream) - 1000])  # the last file stops short
        wait_until(lambda: temps_under(out), 20, "the receiver to hold the unfinished file")
    wait_until(lambda: not temps_under(out), 20, "the receiver to drop the cut connection")
    with Peer(receiver.port) as probe:  # the receiver still serves
        probe.send(protocol.encode_hello())
        assert probe.reply() is not None
    for path in out.iterdir():
        assert path.read_bytes() == data[path.name]
    assert "frame_camera01_000000005.jpg" not in {p.name for p in out.iterdir()}
    assert temps_under(out) == []


def test_one_batch_into_several_folders_lands_each_file_in_its_own(receivers, out: Path) -> None:
    """One pipelined run whose files alternate between three destinations, then a second run
    after one destination was removed: every file lands whole where it was sent."""
    receiver = receivers(out, "--use-dest-paths")
    dests = ["ev1/cam1", "ev1/cam2", "ev2"]
    sent: dict[str, bytes] = {}
    messages = []
    for seq in range(1, 10):
        dest, name = dests[seq % 3], f"frame_camera01_{seq:09d}.jpg"
        sent[f"{dest}/{name}"] = bytes([seq]) * (40_000 + seq)
        messages.append(file_message(seq, name, sent[f"{dest}/{name}"], dest))
    with hello(receiver.port) as peer:
        peer.sock.sendall(b"".join(messages))
        replies = [peer.reply() for _ in range(9)]
        assert [(r.seq, r.status) for r in replies] == [(s, Status.OK) for s in range(1, 10)]
        shutil.rmtree(out / "ev2")  # between two batches: the next file makes it again
        again = bytes([99]) * 1000
        peer.sock.sendall(file_message(10, "again.jpg", again, "ev2") + protocol.encode_end(11))
        peer.sock.shutdown(socket.SHUT_WR)
        assert [(r.seq, r.status) for r in peer.until_closed()] == [
            (10, Status.OK),
            (11, Status.OK),
        ]
    expected = {k: v for k, v in sent.items() if not k.startswith("ev2/")} | {
        "ev2/again.jpg": again
    }
    assert tree_hashes(out) == {k: hashlib.sha256(v).hexdigest() for k, v in expected.items()}
    assert temps_under(out) == []
