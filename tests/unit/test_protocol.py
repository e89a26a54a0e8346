"""The wire protocol: what is encoded decodes back, and bad bytes raise ProtocolError only."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camxfer import protocol
from camxfer.errors import ProtocolError
from camxfer.protocol import (
    FILE_HEADER_SIZE,
    HELLO_SIZE,
    MAX_DEST_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_NAME_BYTES,
    REPLY_SIZE,
    FileHeader,
    MessageType,
    Reply,
    ReplyParser,
    Status,
)

CHECKSUM = bytes(range(16))


def file_header_bytes(
    *,
    kind: int = MessageType.FILE,
    name_len: int = 5,
    dest_len: int = 0,
    seq: int = 1,
    size: int = 10,
) -> bytes:
    return struct.pack("!BBHHHQQ16s", kind, 0, name_len, dest_len, 0, seq, size, CHECKSUM)


# --- HELLO ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [None, 0, 1, 799, 2**64 - 1])
def test_hello_roundtrip(count: int | None) -> None:
    data = protocol.encode_hello(count)
    assert len(data) == HELLO_SIZE
    hello = protocol.decode_hello(data)
    assert hello.version == protocol.VERSION
    assert hello.announced == count


def test_hello_keeps_a_foreign_version_for_the_server_to_refuse() -> None:
    assert protocol.decode_hello(protocol.encode_hello(3, version=9)).version == 9


def test_hello_bad_magic() -> None:
    data = b"HTTP" + protocol.encode_hello()[4:]
    with pytest.raises(ProtocolError, match="magic"):
        protocol.decode_hello(data)


@pytest.mark.parametrize("length", [0, 1, HELLO_SIZE - 1, HELLO_SIZE + 1, 100])
def test_hello_wrong_length(length: int) -> None:
    data = (protocol.encode_hello(1) * 10)[:length]
    with pytest.raises(ProtocolError):
        protocol.decode_hello(data)


def test_hello_unknown_flags() -> None:
    data = bytearray(protocol.encode_hello())
    data[5] = 0x80
    with pytest.raises(ProtocolError, match="flags"):
        protocol.decode_hello(bytes(data))


# --- FILE / END ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "dest", "size"),
    [
        ("frame_camera01_000046836.jpg", "", 1_500_000),
        ("sub/dir/x.jpg", "ball_001/camera01", 0),
        ("é.jpg", "/mnt/destination", 4 << 30),
        ("n" * MAX_NAME_BYTES, "d" * MAX_DEST_BYTES, 1),
    ],
)
def test_file_header_roundtrip(name: str, dest: str, size: int) -> None:
    header = FileHeader(seq=42, name=name, dest=dest, size=size, checksum=CHECKSUM)
    data = header.encode()
    fixed = protocol.decode_fixed(data[:FILE_HEADER_SIZE])
    assert fixed.type is MessageType.FILE
    assert (fixed.seq, fixed.size, fixed.checksum) == (42, size, CHECKSUM)
    assert FILE_HEADER_SIZE + fixed.variable_len == len(data)
    assert protocol.decode_names(fixed, data[FILE_HEADER_SIZE:]) == (name, dest)


def test_end_roundtrip() -> None:
    data = protocol.encode_end(7)
    assert len(data) == FILE_HEADER_SIZE
    fixed = protocol.decode_fixed(data)
    assert (fixed.type, fixed.seq, fixed.variable_len) == (MessageType.END, 7, 0)


@pytest.mark.parametrize("length", [0, 1, FILE_HEADER_SIZE - 1, FILE_HEADER_SIZE + 1])
def test_fixed_header_wrong_length(length: int) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_fixed((file_header_bytes() * 2)[:length])


@pytest.mark.parametrize("kind", [0, 3, 0x7F, 0x81, 0xFF])
def test_fixed_header_unknown_type(kind: int) -> None:
    with pytest.raises(ProtocolError, match="type"):
        protocol.decode_fixed(file_header_bytes(kind=kind))


@pytest.mark.parametrize(
    "fields",
    [
        {"name_len": 0},
        {"name_len": MAX_NAME_BYTES + 1},
        {"name_len": 0xFFFF},
        {"dest_len": MAX_DEST_BYTES + 1},
        {"dest_len": 0xFFFF},
    ],
)
def test_fixed_header_bad_lengths(fields: dict[str, int]) -> None:
    with pytest.raises(ProtocolError, match="length"):
        protocol.decode_fixed(file_header_bytes(**fields))


def test_fixed_header_size_over_the_receiver_limit() -> None:
    assert protocol.decode_fixed(file_header_bytes(size=1000), max_file_size=1000).size == 1000
    with pytest.raises(ProtocolError, match="limit"):
        protocol.decode_fixed(file_header_bytes(size=1001), max_file_size=1000)
    with pytest.raises(ProtocolError, match="limit"):
        protocol.decode_fixed(file_header_bytes(size=2**64 - 1))


@pytest.mark.parametrize(
    ("name", "dest"),
    [("", ""), ("n" * (MAX_NAME_BYTES + 1), ""), ("x", "d" * (MAX_DEST_BYTES + 1))],
)
def test_encode_refuses_bad_names(name: str, dest: str) -> None:
    with pytest.raises(ProtocolError):
        FileHeader(1, name, dest, 1, CHECKSUM).encode()


@pytest.mark.parametrize(("seq", "size"), [(-1, 1), (1, -1), (2**64, 1), (1, 2**64)])
def test_encode_refuses_out_of_range_numbers(seq: int, size: int) -> None:
    with pytest.raises(ProtocolError):
        FileHeader(seq, "x.jpg", "", size, CHECKSUM).encode()


def test_encode_refuses_short_checksum() -> None:
    with pytest.raises(ProtocolError, match="checksum"):
        FileHeader(1, "x.jpg", "", 1, b"short").encode()


def test_names_truncated_or_not_utf8() -> None:
    fixed = protocol.decode_fixed(file_header_bytes(name_len=3, dest_len=2))
    with pytest.raises(ProtocolError, match="truncated"):
        protocol.decode_names(fixed, b"abcd")
    with pytest.raises(ProtocolError, match="UTF-8"):
        protocol.decode_names(fixed, b"ab\xffcd")


# --- REPLY ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", list(Status))
def test_reply_roundtrip_every_status(status: Status) -> None:
    reply = Reply(seq=9, status=status, message=f"because {status.name}")
    assert ReplyParser().feed(reply.encode()) == [reply]


def test_reply_parser_splits_a_stream_fed_byte_by_byte() -> None:
    replies = [Reply(i, Status.OK if i % 2 else Status.DUPLICATE, "m" * i) for i in range(1, 6)]
    stream = b"".join(r.encode() for r in replies)
    parser = ReplyParser()
    got: list[Reply] = []
    for i in range(len(stream)):
        got.extend(parser.feed(stream[i : i + 1]))
    assert got == replies


def test_reply_message_is_capped() -> None:
    data = Reply(1, Status.IO_ERROR, "x" * (MAX_MESSAGE_BYTES * 3)).encode()
    assert len(data) == REPLY_SIZE + MAX_MESSAGE_BYTES
    [reply] = ReplyParser().feed(data)
    assert reply.message == "x" * MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("!BBHIQ", MessageType.FILE, 0, 0, 0, 1),  # not a reply
        struct.pack("!BBHIQ", MessageType.REPLY, 99, 0, 0, 1),  # unknown status
        struct.pack("!BBHIQ", MessageType.REPLY, 0, MAX_MESSAGE_BYTES + 1, 0, 1),
    ],
)
def test_reply_parser_rejects_bad_replies(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        ReplyParser().feed(data)


def test_status_classes() -> None:
    assert {s for s in Status if s.landed} == {Status.OK, Status.DUPLICATE}
    assert Status.IO_ERROR.retryable and Status.CHECKSUM_MISMATCH.retryable
    assert not Status.UNSAFE_PATH.retryable and not Status.EXISTS_DIFFERENT.retryable


# --- arbitrary bytes: a value or ProtocolError, nothing else ---------------------------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=HELLO_SIZE * 2))
def test_decode_hello_any_bytes(data: bytes) -> None:
    try:
        hello = protocol.decode_hello(data)
    except ProtocolError:
        return
    assert len(data) == HELLO_SIZE and data[:4] == protocol.MAGIC
    assert hello.count is None or 0 <= hello.count < 2**64


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(min_size=FILE_HEADER_SIZE, max_size=FILE_HEADER_SIZE),
        st.binary(max_size=FILE_HEADER_SIZE * 2),
        # mostly-valid headers, so the checks past the type byte are reached too
        st.builds(
            file_header_bytes,
            kind=st.sampled_from([1, 2, 3]),
            name_len=st.integers(0, 0xFFFF),
            dest_len=st.integers(0, 0xFFFF),
            seq=st.integers(0, 2**64 - 1),
            size=st.integers(0, 2**64 - 1),
        ),
    ),
    st.binary(max_size=64),
    st.integers(1, 2**40),
)
def test_decode_fixed_and_names_any_bytes(header: bytes, rest: bytes, limit: int) -> None:
    try:
        fixed = protocol.decode_fixed(header, max_file_size=limit)
    except ProtocolError:
        return
    assert fixed.type in (MessageType.FILE, MessageType.END)
    if fixed.type is MessageType.FILE:
        assert 0 < fixed.name_len <= MAX_NAME_BYTES and fixed.dest_len <= MAX_DEST_BYTES
        assert fixed.size <= limit
        try:
            name, _dest = protocol.decode_names(fixed, rest)
        except ProtocolError:
            return
        assert len(rest) == fixed.variable_len and name


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_reply_parser_any_bytes(chunks: list[bytes]) -> None:
    parser = ReplyParser()
    try:
        for chunk in chunks:
            for reply in parser.feed(chunk):
                assert isinstance(reply.status, Status)
                assert len(reply.message.encode("utf-8", "surrogatepass")) <= 3 * MAX_MESSAGE_BYTES
    except ProtocolError:
        return
