"""The shared key file, the handshake messages and the per-message MACs, as plain functions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from camxfer import auth, protocol
from camxfer.auth import KeyFileError, MessageMac
from camxfer.errors import ProtocolError
from camxfer.protocol import Reply, ReplyParser, Status

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NC, NS = b"c" * 32, b"s" * 32
HELLO = protocol.encode_hello(3, auth=True)


# --- the key file --------------------------------------------------------------------------------
def test_keygen_writes_a_0600_hex_key_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "auth.key"
    old = os.umask(0)  # even a permissive umask must not widen the file
    try:
        auth.write_key(path)
    finally:
        os.umask(old)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert len(text) == 65 and text.endswith("\n")
    assert auth.load_key(path) == bytes.fromhex(text.strip())


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "auth.key"
    auth.write_key(path)
    before = path.read_bytes()

    with pytest.raises(KeyFileError, match="already exists"):
        auth.write_key(path)
    assert path.read_bytes() == before


def test_two_keys_differ(tmp_path: Path) -> None:
    auth.write_key(tmp_path / "a")
    auth.write_key(tmp_path / "b")
    assert auth.load_key(tmp_path / "a") != auth.load_key(tmp_path / "b")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_key_other_users_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "auth.key"
    path.write_text(KEY.hex())
    path.chmod(mode)

    with pytest.raises(KeyFileError) as caught:
        auth.load_key(path)
    message = str(caught.value)
    assert f"{mode:04o}" in message and "chmod 600" in message and "\n" not in message


@pytest.mark.parametrize(
    "content",
    [b"", b"abc", KEY.hex()[:-2].encode(), (KEY.hex() + "00").encode(), b"zz" * 32, KEY],
    ids=["empty", "short", "31-bytes", "33-bytes", "not-hex", "raw-bytes"],
)
def test_a_malformed_key_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "auth.key"
    path.write_bytes(content)
    path.chmod(0o600)

    with pytest.raises(KeyFileError, match="malformed"):
        auth.load_key(path)


def test_a_missing_key_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"does not exist.*camxfer keygen"):
        auth.load_key(tmp_path / "missing.key")
    with pytest.raises(KeyFileError, match="folder"):
        auth.load_key(tmp_path)


def test_surrounding_whitespace_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "auth.key"
    path.write_text(f"  {KEY.hex().upper()}\r\n")
    path.chmod(0o400)
    assert auth.load_key(path) == KEY


# --- handshake -----------------------------------------------------------------------------------
def test_hello_carries_the_auth_flag_and_v1_hellos_still_decode() -> None:
    assert protocol.decode_hello(HELLO) == protocol.Hello(1, 3, auth=True)
    assert protocol.decode_hello(protocol.encode_hello(None)) == protocol.Hello(1, None, False)
    with pytest.raises(ProtocolError, match="unknown hello flags"):
        protocol.decode_hello(HELLO[:5] + bytes([0x04]) + HELLO[6:])


def test_challenge_and_auth_messages_round_trip_with_fixed_lengths() -> None:
    challenge = protocol.Challenge(NS, b"p" * 32)
    data = challenge.encode()
    assert len(data) == protocol.CHALLENGE_SIZE == 72
    assert protocol.decode_challenge(data) == challenge
    assert len(protocol.encode_auth(b"q" * 32)) == protocol.AUTH_SIZE == 40
    assert protocol.decode_auth(protocol.encode_auth(b"q" * 32)) == b"q" * 32
    with pytest.raises(ProtocolError):
        protocol.decode_auth(data[:40])  # a challenge is not an auth message
    with pytest.raises(ProtocolError):
        protocol.decode_challenge(data[:-1])
    with pytest.raises(ProtocolError):
        protocol.encode_auth(b"short")


def test_proofs_depend_on_key_nonces_hello_and_role() -> None:
    client = auth.client_proof(KEY, HELLO, NC, NS)
    assert len(client) == 32
    # The server's proof over the same values is a different value: sending it back
    # (reflection) cannot pass as the client's.
    assert auth.server_proof(KEY, HELLO, NC, NS) != client
    assert auth.client_proof(OTHER_KEY, HELLO, NC, NS) != client
    assert auth.client_proof(KEY, HELLO, NC, b"t" * 32) != client  # a new server nonce: replay
    assert auth.client_proof(KEY, HELLO, b"d" * 32, NS) != client
    assert auth.client_proof(KEY, protocol.encode_hello(4, auth=True), NC, NS) != client
    assert auth.proofs_equal(client, auth.client_proof(KEY, HELLO, NC, NS))
    assert not auth.proofs_equal(client, client[:-1] + bytes([client[-1] ^ 1]))
    assert not auth.proofs_equal(client, b"")


def test_session_keys_differ_per_direction_and_per_connection() -> None:
    to_server, to_client = auth.session_macs(KEY, NC, NS)
    assert to_server != to_client
    assert auth.session_macs(KEY, NC, b"t" * 32) != (to_server, to_client)


def test_message_macs_refuse_reordered_replayed_and_changed_messages() -> None:
    key = auth.session_macs(KEY, NC, NS)[0]
    first = protocol.FileHeader(1, "a.jpg", "", 10, b"x" * 16).encode()
    second = protocol.FileHeader(2, "b.jpg", "", 10, b"y" * 16).encode()
    sender = MessageMac(key)
    tags = [sender.tag(first), sender.tag(second)]

    assert MessageMac(key).verify(first, tags[0])
    in_order = MessageMac(key)
    assert in_order.verify(first, tags[0]) and in_order.verify(second, tags[1])
    swapped = MessageMac(key)
    assert not swapped.verify(second, tags[1])  # the second message first: counter 0 != 1
    replayed = MessageMac(key)
    replayed.verify(first, tags[0])
    assert not replayed.verify(first, tags[0])  # the same message again: counter moved on
    changed = bytearray(first)
    changed[-1] ^= 1  # one bit of the name
    assert not MessageMac(key).verify(bytes(changed), tags[0])
    assert not MessageMac(auth.session_macs(KEY, NC, NS)[1]).verify(first, tags[0])


def test_the_reply_parser_checks_each_reply_mac() -> None:
    key = b"k" * 32
    server = MessageMac(key)
    replies = [Reply(0, Status.OK, "camxfer/1"), Reply(1, Status.OK), Reply(2, Status.DUPLICATE)]
    stream = b"".join(data + server.tag(data) for data in (r.encode() for r in replies))

    parser = ReplyParser(MessageMac(key))
    got = [r for i in range(len(stream)) for r in parser.feed(stream[i : i + 1])]
    assert got == replies

    forged = bytearray(stream)
    first_len = len(replies[0].encode()) + protocol.MAC_SIZE
    forged[first_len + 1] = Status.OK  # unchanged status byte...
    forged[first_len + 8 + 7] = 9  # ...but the reply claims seq 9
    parser = ReplyParser(MessageMac(key))
    with pytest.raises(ProtocolError, match="failed authentication"):
        parser.feed(bytes(forged))


def test_failures_are_counted_per_address_and_bounded() -> None:
    counter = auth.FailureCounter(limit=2)
    assert [counter.add("10.0.0.1"), counter.add("10.0.0.1"), counter.add("10.0.0.2")] == [1, 2, 1]
    counter.add("10.0.0.3")  # forgets the oldest address
    assert counter.add("10.0.0.1") == 1
    assert counter.total == 5


# --- settings that carry the key --------------------------------------------------------------
def test_settings_records_never_show_the_key_in_their_repr(tmp_path: Path) -> None:
    import ssl

    from camxfer.send.connection import ConnectionSettings
    from camxfer.send.options import SendOptions

    context = ssl.create_default_context()
    for record in (
        SendOptions(tmp_path, port=5000, auth_key=KEY, tls=context),
        ConnectionSettings("127.0.0.1", 5000, auth_key=KEY, tls=context),
    ):
        text = repr(record)
        assert KEY.hex() not in text and repr(KEY) not in text and "SSLContext" not in text
        assert "auth_key=<set>" in text and "tls=<set>" in text and "port=5000" in text
    assert "auth_key=None" in repr(SendOptions(tmp_path))
