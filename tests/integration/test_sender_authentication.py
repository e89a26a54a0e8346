"""With a shared key, only senders holding it write, and nothing they send can be changed.

Real `camxfer recv` processes with --auth-key-file; real `camxfer send` processes; attacks
made with raw sockets speaking the protocol (camxfer.protocol / camxfer.auth build the bytes)
and with an in-test TCP relay that rewrites bytes between a real sender and receiver. Each
attack must end with the connection closed, nothing written and the failure in the log, while
a sender with the key still lands its frames byte-identical.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from camxfer import auth, protocol
from camxfer.auth import MessageMac
from camxfer.manifest import MANIFEST_NAME, parse_manifest
from camxfer.protocol import FileHeader, Reply, ReplyParser, Status
from tests.conftest import (
    make_frames,
    run_sender,
    sha256_file,
    temps_under,
    tree_hashes,
    wait_until,
)
from tests.integration.security_helpers import run_cli

pytestmark = pytest.mark.timeout(120)

DEADLINE_FLAGS = ("--handshake-timeout", "1", "--io-timeout", "60")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "auth.key"
    path.parent.mkdir()
    auth.write_key(path)
    return path


@pytest.fixture
def other_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "other.key"
    auth.write_key(path)
    return path


def assert_landed_identical(src: Path, out: Path, paths: list[Path]) -> None:
    landed = tree_hashes(out)
    assert landed == {p.name: sha256_file(p) for p in paths}
    assert not temps_under(out)


def failures_logged(log: str) -> int:
    return log.count("authentication failed")


# --- a client speaking the protocol by hand ------------------------------------------------------
def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def authenticated_session(
    port: int, key: bytes, files: list[tuple[str, bytes]]
) -> tuple[bytes, list[Reply]]:
    """Send `files` over one authenticated connection; (every byte sent, every reply)."""
    with connect(port) as sock:
        hello = protocol.encode_hello(None, auth=True)
        client_nonce = auth.new_nonce()
        sent = hello + client_nonce
        sock.sendall(sent)
        challenge = protocol.decode_challenge(recv_exact(sock, protocol.CHALLENGE_SIZE))
        assert auth.proofs_equal(
            auth.server_proof(key, hello, client_nonce, challenge.nonce), challenge.proof
        ), "the receiver did not prove it holds the key"
        message = protocol.encode_auth(auth.client_proof(key, hello, client_nonce, challenge.nonce))
        sent += message
        to_server, to_client = auth.session_macs(key, client_nonce, challenge.nonce)
        mac = MessageMac(to_server)
        for seq, (name, body) in enumerate(files, 1):
            hasher = protocol.new_hasher()
            hasher.update(body)
            header = FileHeader(seq, name, "", len(body), hasher.digest()).encode()
            sent += header + mac.tag(header) + body
        end = protocol.encode_end(len(files) + 1)
        sent += end + mac.tag(end)
        sock.sendall(sent[len(hello + client_nonce) :])
        replies = ReplyParser(MessageMac(to_client)).feed(read_to_end(sock))
    return sent, replies


def refused_reply(sock: socket.socket) -> Reply:
    """The plain (untagged) reply a refused handshake ends with."""
    seq, status, message_len = protocol.decode_reply_fixed(recv_exact(sock, protocol.REPLY_SIZE))
    return Reply(seq, status, recv_exact(sock, message_len).decode())


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the receiver closed `sock` (EOF or reset) before the socket's timeout."""
    try:
        read_to_end(sock)
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


# --- senders with and without the key ------------------------------------------------------------
def test_a_sender_with_the_key_lands_frames_byte_identical(
    receivers, src: Path, out: Path, key_file: Path
) -> None:
    frames = make_frames(src, 40, size=20_000)
    receiver = receivers(out, "--workers", "2", "--auth-key-file", str(key_file))

    result = run_sender(
        src,
        receiver.port,
        "--once",
        "--json-stats",
        "--conns",
        "4",
        "--auth-key-file",
        str(key_file),
    )

    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 40
    assert_landed_identical(src, out, frames)
    # The run's manifest travels under the same MACs and lists every frame.
    manifest = parse_manifest((out / MANIFEST_NAME).read_bytes())
    assert sorted(manifest.files) == sorted(frame.name for frame in frames)
    assert "senders must authenticate" in receiver.log()
    assert failures_logged(receiver.log()) == 0


def test_a_sender_without_the_key_is_refused_and_nothing_is_written(
    receivers, src: Path, out: Path, key_file: Path
) -> None:
    make_frames(src, 5)
    receiver = receivers(out, "--auth-key-file", str(key_file))

    result = run_sender(src, receiver.port, "--once", "--conns", "1")

    assert result.returncode == 1
    assert "requires a shared key; give the sender --auth-key-file" in result.stderr
    assert tree_hashes(out) == {}
    wait_until(lambda: "sender offered no key" in receiver.log(), 10, "the refusal in the log")
    assert "1 failure(s) from 127.0.0.1" in receiver.log()


def test_a_sender_with_another_key_is_refused_and_nothing_is_written(
    receivers, src: Path, out: Path, key_file: Path, other_key_file: Path
) -> None:
    make_frames(src, 5)
    receiver = receivers(out, "--auth-key-file", str(key_file))

    result = run_sender(
        src, receiver.port, "--once", "--conns", "1", "--auth-key-file", str(other_key_file)
    )

    # The sender sees the receiver's proof fail against its own key and sends it nothing.
    assert result.returncode == 1
    assert "failed to prove it holds the shared key" in result.stderr
    assert tree_hashes(out) == {}
    wait_until(lambda: failures_logged(receiver.log()) >= 1, 10, "the failure in the log")


def test_a_wrong_proof_gets_a_generic_refusal(receivers, out: Path, key_file: Path) -> None:
    receiver = receivers(out, "--auth-key-file", str(key_file))
    wrong = auth.load_key(key_file)[::-1]

    with connect(receiver.port) as sock:
        hello = protocol.encode_hello(None, auth=True)
        nonce = auth.new_nonce()
        sock.sendall(hello + nonce)
        challenge = protocol.decode_challenge(recv_exact(sock, protocol.CHALLENGE_SIZE))
        sock.sendall(protocol.encode_auth(auth.client_proof(wrong, hello, nonce, challenge.nonce)))
        reply = refused_reply(sock)
        assert closed_by_server(sock)

    assert (reply.status, reply.message) == (Status.AUTH_FAILED, "authentication failed")
    assert "1 failure(s) from 127.0.0.1" in receiver.log()
    assert tree_hashes(out) == {}


def test_a_keyed_sender_and_a_keyless_receiver_refuse_rather_than_downgrade(
    receivers, src: Path, out: Path, key_file: Path
) -> None:
    make_frames(src, 5)
    receiver = receivers(out)

    result = run_sender(
        src, receiver.port, "--once", "--conns", "1", "--auth-key-file", str(key_file)
    )

    assert result.returncode == 1
    assert "this receiver has no shared key" in result.stderr
    assert tree_hashes(out) == {}


def test_a_v1_sender_without_a_key_still_works_with_a_keyless_receiver(
    receivers, src: Path, out: Path
) -> None:
    frames = make_frames(src, 5)
    receiver = receivers(out)

    result = run_sender(src, receiver.port, "--once", "--conns", "2")

    assert result.returncode == 0, result.stderr
    assert_landed_identical(src, out, frames)


def test_a_key_file_open_to_others_is_refused_with_one_line(
    src: Path, out: Path, key_file: Path
) -> None:
    key_file.chmod(0o644)
    make_frames(src, 2)

    for command in (
        ["recv", "--port", "1", "--out-dir", str(out)],
        ["send", "--src-dir", str(src), "--port", "1", "--once"],
    ):
        done = run_cli([*command, "--auth-key-file", str(key_file)])
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"camxfer {command[0]}: error: key file {key_file} has permissions 0644, open to "
            f"other users; it must be readable by its owner only (chmod 600 {key_file})"
        ]
    assert tree_hashes(out) == {}


# --- replay, reflection and broken handshakes ----------------------------------------------------
def test_a_replayed_session_writes_nothing(receivers, out: Path, key_file: Path) -> None:
    receiver = receivers(out, "--auth-key-file", str(key_file))
    body = os.urandom(5000)
    recorded, replies = authenticated_session(
        receiver.port, auth.load_key(key_file), [("a.jpg", body)]
    )
    assert [r.status for r in replies] == [Status.OK, Status.OK, Status.OK]
    assert (out / "a.jpg").read_bytes() == body
    (out / "a.jpg").unlink()

    with connect(receiver.port) as sock:
        sock.sendall(recorded)  # every byte the good client sent, to a fresh server nonce
        recv_exact(sock, protocol.CHALLENGE_SIZE)
        reply = refused_reply(sock)
        assert closed_by_server(sock)

    assert reply.status == Status.AUTH_FAILED
    assert tree_hashes(out) == {}
    assert "1 failure(s) from 127.0.0.1" in receiver.log()


def test_reflected_proofs_are_refused(receivers, out: Path, key_file: Path) -> None:
    """Without the key, an attacker has only the receiver's own proofs to send back."""
    # One worker: the failures are counted per worker process, and both must meet one count.
    receiver = receivers(out, "--workers", "1", "--auth-key-file", str(key_file))
    hello = protocol.encode_hello(None, auth=True)
    with connect(receiver.port) as first, connect(receiver.port) as second:
        first.sendall(hello + auth.new_nonce())
        challenge = protocol.decode_challenge(recv_exact(first, protocol.CHALLENGE_SIZE))
        # The receiver's nonce as the client nonce of a second connection: its proof there
        # covers that nonce, as the client's proof on the first must - but in the server role.
        second.sendall(hello + challenge.nonce)
        other = protocol.decode_challenge(recv_exact(second, protocol.CHALLENGE_SIZE))
        first.sendall(protocol.encode_auth(other.proof))
        second.sendall(protocol.encode_auth(other.proof))  # its own proof, straight back
        replies = [refused_reply(first), refused_reply(second)]

    assert [r.status for r in replies] == [Status.AUTH_FAILED, Status.AUTH_FAILED]
    wait_until(lambda: "2 failure(s) from 127.0.0.1" in receiver.log(), 10, "both failures")
    assert tree_hashes(out) == {}


def test_broken_handshakes_are_closed_and_counted_while_a_good_sender_lands(
    receivers, src: Path, out: Path, key_file: Path
) -> None:
    # One worker: the failures are counted per worker process, and all four must meet one.
    receiver = receivers(out, "--workers", "1", "--auth-key-file", str(key_file), *DEADLINE_FLAGS)
    hello = protocol.encode_hello(None, auth=True)
    bad: dict[str, socket.socket] = {}
    bad["silent"] = connect(receiver.port)
    bad["truncated"] = connect(receiver.port)
    bad["truncated"].sendall(hello + b"n" * 10)
    bad["oversized"] = connect(receiver.port)
    bad["oversized"].sendall(hello + auth.new_nonce())
    bad["oversized"].settimeout(10)
    with contextlib.suppress(OSError):
        bad["oversized"].sendall(os.urandom(256 << 10))
    bad["trickle"] = connect(receiver.port)
    trickle_stop = threading.Event()

    def trickle() -> None:  # one byte at a time, each well inside --io-timeout
        for byte in hello:
            if trickle_stop.wait(0.3):
                return
            with contextlib.suppress(OSError):
                bad["trickle"].send(bytes([byte]))

    dribbler = threading.Thread(target=trickle, daemon=True)
    dribbler.start()
    frames = make_frames(src, 30, size=10_000)
    try:
        result = run_sender(
            src, receiver.port, "--once", "--json-stats", "--auth-key-file", str(key_file)
        )
        assert result.returncode == 0, result.stderr
        assert_landed_identical(src, out, frames)
        for name, sock in bad.items():
            sock.settimeout(30)
            assert closed_by_server(sock), name
    finally:
        trickle_stop.set()
        for sock in bad.values():
            sock.close()
        dribbler.join(5)

    wait_until(lambda: failures_logged(receiver.log()) >= 4, 15, "four failures logged")
    assert "4 failure(s) from 127.0.0.1" in receiver.log()
    # Silent, truncated and trickling: ended by the handshake deadline (1 s; --io-timeout is
    # 60 s and each trickled byte came well inside it); oversized: its junk is no proof.
    assert receiver.log().count("handshake not completed") == 3
    assert receiver.log().count("(wrong proof)") == 1


# --- changing bytes on the way -------------------------------------------------------------------
class Relay:
    """A TCP relay to a receiver that lets a test rewrite the first connection's bytes."""

    def __init__(
        self,
        target_port: int,
        to_server: Callable[[bytes], bytes] | None = None,
        to_client: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.target_port = target_port
        self.rewrite = {"to_server": to_server, "to_client": to_client}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets += [client, server]
                first = self.connections == 0
                self.connections += 1
                for source, sink, way in (
                    (client, server, "to_server"),
                    (server, client, "to_client"),
                ):
                    rewrite = self.rewrite[way] if first else None
                    thread = threading.Thread(
                        target=self._pump, args=(source, sink, rewrite), daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, rewrite) -> None:
        """Copy bytes; with `rewrite`, buffer the stream and let it change the whole so far."""
        seen = b""
        sent = 0
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if rewrite is None:
                    sink.sendall(data)
                    continue
                seen += data
                out = rewrite(seen)
                sink.sendall(out[sent:])
                sent = len(out)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


# Offsets in an authenticated stream (docs/protocol.md): client HELLO + nonce + AUTH, then the
# first FILE header; server CHALLENGE, then the handshake's OK reply ("camxfer/1") + MAC.
FIRST_FILE_AT = protocol.HELLO_SIZE + protocol.NONCE_SIZE + protocol.AUTH_SIZE
FIRST_FILE_REPLY_AT = protocol.CHALLENGE_SIZE + protocol.REPLY_SIZE + 9 + protocol.MAC_SIZE


def flip_first_name_byte(stream: bytes) -> bytes:
    at = FIRST_FILE_AT + protocol.FILE_HEADER_SIZE  # the first character of the file name
    if len(stream) <= at:
        return stream
    return stream[:at] + b"g" + stream[at + 1 :]


def inject_a_file(stream: bytes) -> bytes:
    if len(stream) < FIRST_FILE_AT:
        return stream
    body = b"\xff\xd8 injected \xff\xd9"
    hasher = protocol.new_hasher()
    hasher.update(body)
    forged = FileHeader(1, "injected.jpg", "", len(body), hasher.digest()).encode()
    forged += os.urandom(protocol.MAC_SIZE) + body
    return stream[:FIRST_FILE_AT] + forged + stream[FIRST_FILE_AT:]


def forge_first_ack(stream: bytes) -> bytes:
    at = FIRST_FILE_REPLY_AT + 1  # the status byte of the first file's reply
    if len(stream) <= at:
        return stream
    return stream[:at] + bytes([Status.DUPLICATE]) + stream[at + 1 :]


@pytest.fixture
def relay() -> Iterator[Callable[..., Relay]]:
    made: list[Relay] = []

    def make(*args, **kwargs) -> Relay:
        made.append(Relay(*args, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.mark.parametrize(
    ("rewrite", "logged"),
    [
        ({"to_server": flip_first_name_byte}, "failed its MAC"),
        ({"to_server": inject_a_file}, "failed its MAC"),
        ({"to_client": forge_first_ack}, None),
    ],
    ids=["changed-header", "injected-file", "forged-ack"],
)
def test_bytes_changed_on_the_way_are_refused_and_the_frames_still_land(
    receivers, relay, src: Path, out: Path, key_file: Path, rewrite: dict, logged: str | None
) -> None:
    receiver = receivers(out, "--auth-key-file", str(key_file))
    link = relay(receiver.port, **rewrite)
    frames = make_frames(src, 6, size=8000, random_bytes=False)

    result = run_sender(
        src,
        link.port,
        "--once",
        "--json-stats",
        "--conns",
        "1",
        "--auth-key-file",
        str(key_file),
    )

    assert result.returncode == 0, result.stderr
    assert link.connections >= 2, "the tampered connection was not dropped"
    assert result.stats["retries"] >= 1
    assert_landed_identical(src, out, frames)  # nothing under a changed or injected name
    if logged:
        assert logged in receiver.log()
        assert "1 failure(s) from 127.0.0.1" in receiver.log()
    else:
        assert "a reply from the receiver failed authentication" in result.stderr
