"""A FILE header carries a CRC-16 of itself, its name and destination, and a REPLY a CRC-32 of
itself and its message: a bit flipped anywhere in them on the wire is refused (ProtocolError),
never decoded into another valid header or acknowledgement."""

from __future__ import annotations

import struct

import pytest

from camxfer import protocol
from camxfer.errors import ProtocolError
from camxfer.protocol import FILE_HEADER_SIZE, FileHeader, MessageType, Reply, ReplyParser, Status

BODY = bytes(range(256)) * 8


def decode(stream: bytes) -> tuple[protocol.FixedHeader, str, str]:
    """What a receiver makes of the stream: the fixed part, then the names it announces."""
    fixed = protocol.decode_fixed(stream[:FILE_HEADER_SIZE])
    if fixed.type != MessageType.FILE:
        raise ProtocolError("not a file")
    names = stream[FILE_HEADER_SIZE : FILE_HEADER_SIZE + fixed.variable_len]
    return fixed, *protocol.decode_names(fixed, names)


@pytest.mark.parametrize(
    ("name", "dest"), [("frame_camera01_000000001.jpg", ""), ("f.jpg", "ball_7/camera03")]
)
def test_every_single_bit_error_in_a_header_is_refused(name: str, dest: str) -> None:
    header = FileHeader(41, name, dest, len(BODY), bytes(range(16))).encode()
    fixed, got_name, got_dest = decode(header + BODY)
    assert (fixed.seq, got_name, got_dest, fixed.size) == (41, name, dest, len(BODY))
    for bit in range(len(header) * 8):
        damaged = bytearray(header)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProtocolError):
            decode(bytes(damaged) + BODY)


def test_a_header_without_a_check_is_still_accepted() -> None:
    """Senders from before the check sent 0 in that (then reserved) field."""
    name = b"old.jpg"
    fixed = struct.pack(
        "!BBHHHQQ16s", MessageType.FILE, 0, len(name), 0, 0, 3, len(BODY), bytes(16)
    )
    header, got_name, got_dest = decode(fixed + name + BODY)
    assert (header.seq, got_name, got_dest, header.header_check) == (3, "old.jpg", "", 0)


def test_every_single_bit_error_in_a_reply_is_refused() -> None:
    reply = Reply(7, Status.CHECKSUM_MISMATCH, "frame_camera01_000000007.jpg: bytes differ")
    encoded = reply.encode()
    assert ReplyParser().feed(encoded) == [reply]
    following = Reply(8, Status.OK).encode() + bytes(2048)  # whatever length is announced
    for bit in range(len(encoded) * 8):
        damaged = bytearray(encoded)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProtocolError):
            ReplyParser().feed(bytes(damaged) + following)


def test_a_reply_without_a_check_is_still_accepted() -> None:
    """Receivers from before the check sent 0 in that (then reserved) field."""
    old = struct.pack("!BBHIQ", MessageType.REPLY, Status.OK, 2, 0, 5) + b"ok"
    assert ReplyParser().feed(old) == [Reply(5, Status.OK, "ok")]
